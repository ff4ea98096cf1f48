"""Synthetic values for the DLP tests, generated at run time.

No realistic credential is written literally in the test sources: secret scanners (ours
included) would rightly flag them. Each sample is random characters in the vendor's published
format, from a seeded generator, so runs are reproducible.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"

Part = str | tuple[str, int]


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def build(rng: random.Random, *parts: Part) -> str:
    return "".join(part if isinstance(part, str) else rand(rng, *part) for part in parts)


def uuid(rng: random.Random) -> str:
    h = rand(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def jwt(rng: random.Random) -> str:
    def enc(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"sub": rand(rng, DIGITS, 8), "iat": 1_700_000_000}
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(claims)}.{rand(rng, URLSAFE, 43)}"


def pem(rng: random.Random, kind: str = "RSA PRIVATE KEY") -> str:
    body = "\n".join(rand(rng, B64, 64) for _ in range(8))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


# One generator per vendor-format rule: the value alone is enough to detect it.
TOKENS: dict[str, Callable[[random.Random], str]] = {
    "aws_access_key": lambda r: build(r, "AKIA", (UPPER + "234567", 16)),
    "aws_mws_token": lambda r: "amzn.mws." + uuid(r),
    "gcp_api_key": lambda r: build(r, "AIza", (URLSAFE, 35)),
    "google_oauth_client_secret": lambda r: build(r, "GOCSPX-", (URLSAFE, 28)),
    "google_oauth_token": lambda r: build(r, "ya29.", (URLSAFE, 150)),
    "github_pat": lambda r: build(r, "ghp_", (ALNUM, 36)),
    "github_oauth_token": lambda r: build(r, "gho_", (ALNUM, 36)),
    "github_user_token": lambda r: build(r, "ghu_", (ALNUM, 36)),
    "github_app_token": lambda r: build(r, "ghs_", (ALNUM, 36)),
    "github_refresh_token": lambda r: build(r, "ghr_", (ALNUM, 76)),
    "github_fine_grained_pat": lambda r: build(r, "github_pat_", (ALNUM, 22), "_", (ALNUM, 59)),
    "gitlab_pat": lambda r: build(r, "glpat-", (URLSAFE, 20)),
    "gitlab_token": lambda r: build(r, "glrt-", (URLSAFE, 20)),
    "slack_bot_token": lambda r: build(
        r, "xoxb-", (DIGITS, 12), "-", (DIGITS, 13), "-", (ALNUM, 24)
    ),
    "slack_user_token": lambda r: build(
        r, "xoxp-", (DIGITS, 12), "-", (DIGITS, 12), "-", (DIGITS, 13), "-", (HEX, 32)
    ),
    "slack_app_token": lambda r: build(
        r, "xapp-1-A", (UPPER, 10), "-", (DIGITS, 13), "-", (HEX, 64)
    ),
    "slack_token": lambda r: build(r, "xoxe.xoxp-1-", (ALNUM, 140)),
    "slack_webhook": lambda r: build(
        r, "https://hooks.slack.com/services/T", (UPPER, 8), "/B", (UPPER, 10), "/", (ALNUM, 24)
    ),
    "discord_webhook": lambda r: build(
        r, "https://discord.com/api/webhooks/", (DIGITS, 18), "/", (URLSAFE, 68)
    ),
    "teams_webhook": lambda r: (
        f"https://acme.webhook.office.com/webhookb2/{uuid(r)}@{uuid(r)}/"
        f"IncomingWebhook/{rand(r, HEX, 32)}/{uuid(r)}"
    ),
    "stripe_secret_key": lambda r: build(r, "sk_live_", (ALNUM, 40)),
    "stripe_restricted_key": lambda r: build(r, "rk_live_", (ALNUM, 40)),
    "stripe_webhook_secret": lambda r: build(r, "whsec_", (ALNUM, 32)),
    "openai_api_key": lambda r: build(r, "sk-proj-", (URLSAFE, 74), "T3BlbkFJ", (URLSAFE, 74)),
    "openrouter_api_key": lambda r: build(r, "sk-or-v1-", (HEX, 64)),
    "anthropic_api_key": lambda r: build(r, "sk-ant-api03-", (URLSAFE, 93), "AA"),
    "npm_token": lambda r: build(r, "npm_", (ALNUM, 36)),
    "pypi_token": lambda r: build(r, "pypi-AgEIcHlwaS5vcmc", (URLSAFE, 150)),
    "twilio_api_key": lambda r: build(r, "SK", (HEX, 32)),
    "sendgrid_api_key": lambda r: build(r, "SG.", (URLSAFE, 22), ".", (URLSAFE, 43)),
    "mailgun_api_key": lambda r: build(r, "key-", (HEX, 32)),
    "brevo_api_key": lambda r: build(r, "xkeysib-", (HEX, 64), "-", (ALNUM, 16)),
    "telegram_bot_token": lambda r: build(r, (DIGITS, 9), ":AA", (URLSAFE, 33)),
    "mailchimp_api_key": lambda r: build(r, (HEX, 32), "-us", (DIGITS, 2)),
    "huggingface_token": lambda r: build(r, "hf_", (UPPER + LOWER, 34)),
    "groq_api_key": lambda r: build(r, "gsk_", (ALNUM, 52)),
    "replicate_token": lambda r: build(r, "r8_", (ALNUM, 37)),
    "xai_api_key": lambda r: build(r, "xai-", (ALNUM, 80)),
    "perplexity_api_key": lambda r: build(r, "pplx-", (ALNUM, 48)),
    "langsmith_api_key": lambda r: build(r, "lsv2_pt_", (HEX, 32), "_", (HEX, 10)),
    "databricks_token": lambda r: build(r, "dapi", (HEX, 32)),
    "shopify_token": lambda r: build(r, "shpat_", (HEX, 32)),
    "square_token": lambda r: build(r, "sq0atp-", (URLSAFE, 22)),
    "atlassian_api_token": lambda r: build(r, "ATATT3xFfGF0", (URLSAFE, 170), "=", (HEX, 8)),
    "linear_api_key": lambda r: build(r, "lin_api_", (ALNUM, 40)),
    "notion_token": lambda r: build(r, "ntn_", (ALNUM, 46)),
    "postman_api_key": lambda r: build(r, "PMAK-", (HEX, 24), "-", (HEX, 34)),
    "new_relic_key": lambda r: build(r, "NRAK-", (UPPER + DIGITS, 27)),
    "sentry_token": lambda r: build(r, "sntrys_", (ALNUM, 120)),
    "grafana_token": lambda r: build(r, "glsa_", (ALNUM, 32), "_", (HEX, 8)),
    "sonarqube_token": lambda r: build(r, "squ_", (HEX, 40)),
    "mapbox_secret_token": lambda r: build(r, "sk.eyJ", (URLSAFE, 60), ".", (URLSAFE, 22)),
    "firebase_fcm_key": lambda r: build(r, "AAAA", (URLSAFE, 7), ":APA91b", (URLSAFE, 134)),
    "digitalocean_token": lambda r: build(r, "dop_v1_", (HEX, 64)),
    "docker_hub_token": lambda r: build(r, "dckr_pat_", (URLSAFE, 27)),
    "jfrog_token": lambda r: build(r, "AKCp", (ALNUM, 69)),
    "vault_token": lambda r: build(r, "hvs.", (URLSAFE, 90)),
    "terraform_cloud_token": lambda r: build(r, (ALNUM, 14), ".atlasv1.", (ALNUM, 67)),
    "doppler_token": lambda r: build(r, "dp.pt.", (ALNUM, 43)),
    "pulumi_token": lambda r: build(r, "pul-", (HEX, 40)),
    "supabase_token": lambda r: build(r, "sbp_", (HEX, 40)),
    "planetscale_token": lambda r: build(r, "pscale_tkn_", (URLSAFE, 43)),
    "tailscale_key": lambda r: build(r, "tskey-auth-k", (ALNUM, 10), "CNTRL-", (ALNUM, 30)),
    "heroku_api_key": lambda r: build(r, "HRKU-AA", (URLSAFE, 58)),
    "age_secret_key": lambda r: build(
        r, "AGE-SECRET-KEY-1", ("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    ),
    "azure_devops_pat": lambda r: build(r, (ALNUM, 76), "AZDO", (ALNUM, 4)),
    "azure_ad_client_secret": lambda r: build(r, (ALNUM, 3), "8Q~", (ALNUM + "_-.~", 34)),
    "jwt": jwt,
    "private_key": pem,
}


def luhn_digit(payload: str) -> str:
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def card(rng: random.Random, prefix: str = "4", length: int = 16) -> str:
    payload = prefix + rand(rng, DIGITS, length - len(prefix) - 1)
    return payload + luhn_digit(payload)


def rib_key(bank: str, branch: str, account: str) -> str:
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


def fr_iban(rng: random.Random) -> str:
    bank, branch, account = rand(rng, DIGITS, 5), rand(rng, DIGITS, 5), rand(rng, DIGITS, 11)
    bban = bank + branch + account + rib_key(bank, branch, account)
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(numeric) % 97:02d}{bban}"


def nir(rng: random.Random, department: str = "75") -> str:
    body = "1" + "85" + "05" + department + rand(rng, DIGITS, 3) + rand(rng, DIGITS, 3)
    numeric = body.replace("2A", "19").replace("2B", "18")
    return body + f"{97 - int(numeric) % 97:02d}"


def siren(rng: random.Random) -> str:
    payload = rng.choice("123456789") + rand(rng, DIGITS, 7)
    return payload + luhn_digit(payload)
