"""Person names: an optional, separately switchable tier, off by default.

The approach is deliberately simple and its limits are stated here rather than hidden:

- a name is a first name from a list of common French and English first names, written with a
  capital, followed by a capitalised (or all-capitals) surname: ``Marie Dupont``,
  ``Jean-Pierre MARTIN``, ``Sarah O'Connor``;
- or a title followed by a capitalised surname: ``M. Dupont``, ``Mme Lefèvre``, ``Dr Watson``;
- a capitalised common word after a first name is not a surname (``Pierre Et``, ``Rose The``).

It misses first names that are not in the list, names written in lower case, and surnames
alone; it reports fictional characters and people named in public sources alike. That is why it
is a tier of its own: precision and recall are far below the checksum-backed detectors (see
bench/dlp/README.md for the measured figures), and a deployment that turns it on accepts more
false positives in exchange for some coverage of names.
"""

from __future__ import annotations

from passerelle.dlp.findings import Category
from passerelle.dlp.rules import PERSON_NAME, Rule, Span, Trigger, hs_literal

FIRST_NAMES = (  # noqa: SIM905 (a list of words reads best as words)
    # French
    "Adèle Adrien Agathe Agnès Alain Alexandre Alexis Alice Aline Amandine Amélie Anaïs André "
    "Andrée Anne Annick Antoine Arnaud Arthur Aurélie Aurélien Baptiste Benoît Bernard Bertrand "
    "Brigitte Bruno Camille Caroline Catherine Cécile Céline Chantal Charles Charlotte Chloé "
    "Christian Christine Christophe Claire Claude Clément Clémence Colette Corinne Damien Daniel "
    "Danielle Denis Didier Dominique Dorothée Édouard Élise Élodie Emma Emmanuel Éric Estelle "
    "Étienne Fabien Fabrice Florence Florian Francis Franck François Françoise Frédéric "
    "Gabriel Gaëlle Geneviève Georges Gérard Gilles Grégoire Guillaume Guy Hélène Henri Hervé "
    "Hugo Hugues Inès Isabelle Jacqueline Jacques Jean Jeanne Jérémy Jérôme Joël Josiane Julie "
    "Julien Juliette Karine Laetitia Laure Laurence Laurent Léa Léo Léon Lionel Louis Louise "
    "Luc Lucas Lucie Lucien Manon Marc Marcel Margaux Marguerite Marie Marine Martine Mathieu "
    "Mathilde Maxime Michel Michèle Monique Morgane Muriel Nadine Nathalie Nicolas Nicole Noémie "
    "Océane Olivier Pascal Pascale Patrice Patrick Paul Pauline Philippe Pierre Quentin Raphaël "
    "Raymond Régis Rémi Renaud René Robert Roger Romain Sabine Sandrine Sébastien Serge Simone "
    "Solène Sophie Stéphane Stéphanie Suzanne Sylvain Sylvie Théo Thierry Thomas Valérie Vincent "
    "Virginie Xavier Yann Yannick Yves Yvette Zoé "
    # English
    "Aaron Abigail Adam Alan Albert Amanda Amy Andrew Angela Anna Anthony Ashley Barbara Benjamin "
    "Betty Brandon Brian Carol Carolyn Charlie Christopher Cynthia Daniel David Deborah Dennis "
    "Donald Donna Dorothy Douglas Edward Elizabeth Emily Eric Ethan Frank Gary George Gregory "
    "Hannah Harold Heather Helen Henry Jack Jacob James Janet Jason Jeffrey Jennifer Jessica "
    "John Jonathan Joseph Joshua Joyce Justin Karen Katherine Kathleen Kelly Kenneth Kevin "
    "Kimberly Larry Laura Linda Lisa Margaret Mary Matthew Megan Melissa Michael Michelle "
    "Nancy Nicholas Olivia Oliver Pamela Patricia Peter Rachel Raymond Rebecca Richard Robert "
    "Ronald Ruth Ryan Samantha Samuel Sandra Sarah Scott Sharon Shirley Stephanie Stephen Steven "
    "Susan Thomas Timothy Tyler Victoria Walter William Zachary"
).split()

_TITLES = (
    r"Monsieur|Madame|Mademoiselle|M\.|Mme\.?|Mlle\.?|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|Pr\.?|Maître"
    r"|Docteur|Professeur"
)
_HS_TITLES = (
    r"Monsieur|Madame|Mademoiselle|M\.|Mme\.?|Mlle\.?|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|Pr\.?"
    r"|Ma\xc3\xaetre|Docteur|Professeur"
)
_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
_SURNAME = (
    f"(?:(?:de|du|des|van|von|le|la|d')\\s?)?"
    f"(?:[{_UPPER}][{_LOWER}]+(?:[-'\u2019][{_UPPER}]?[{_LOWER}]+)?|[{_UPPER}]{{2,}}(?:-[{_UPPER}]{{2,}})?)"
)
# Capitalised words that follow a first name without being a surname.
_NOT_SURNAMES = frozenset(
    [
        "The",
        "This",
        "That",
        "These",
        "Those",
        "And",
        "But",
        "For",
        "With",
        "From",
        "Into",
        "Onto",
        "Over",
        "Under",
        "Is",
        "Are",
        "Was",
        "Were",
        "Has",
        "Have",
        "Had",
        "Will",
        "Would",
        "Can",
        "Could",
        "Should",
        "May",
        "Might",
        "Must",
        "Not",
        "Our",
        "Your",
        "Their",
        "His",
        "Her",
        "Its",
        "Le",
        "La",
        "Les",
        "Un",
        "Une",
        "Des",
        "Du",
        "De",
        "Et",
        "Ou",
        "Mais",
        "Pour",
        "Avec",
        "Dans",
        "Sur",
        "Par",
        "Est",
        "Sont",
        "Qui",
        "Que",
        "Quoi",
        "Street",
        "Avenue",
        "Road",
        "Boulevard",
        "Rue",
        "Place",
        "Square",
        "Park",
        "Hotel",
        "Bank",
        "Group",
        "Inc",
        "Ltd",
        "Corp",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Lundi",
        "Mardi",
        "Mercredi",
        "Jeudi",
        "Vendredi",
        "Samedi",
        "Dimanche",
        "January",
        "February",
        "March",
        "April",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "Janvier",
        "Février",
        "Mars",
        "Avril",
        "Mai",
        "Juin",
        "Juillet",
        "Août",
        "Septembre",
        "Octobre",
        "Novembre",
        "Décembre",
    ]
)


def _surname_check(text: str, start: int, end: int) -> Span | None:
    last = text[start:end].split()[-1]
    return None if last in _NOT_SURNAMES else (start, end)


def name_rules() -> tuple[Rule, ...]:
    first = "|".join(sorted(FIRST_NAMES, key=len, reverse=True))
    hs_first = "|".join(hs_literal(name) for name in sorted(FIRST_NAMES, key=len, reverse=True))
    capital = r"(?:[A-Z]|\xc3[\x80-\x9e])"
    return (
        Rule(
            id="person_name",
            category=Category.PERSONAL,
            triggers=(Trigger(f"(?:{hs_first})\\s+{capital}", before=50, after=60),),
            pattern=(
                f"(?<![\\w])(?:{first})(?:[- ](?:{first}))?\\s+{_SURNAME}"
                f"(?:\\s+[{_UPPER}]{{2,}})?(?![\\w])"
            ),
            priority=PERSON_NAME,
            check=_surname_check,
            label="PERSON",
        ),
        Rule(
            id="person_name",
            category=Category.PERSONAL,
            triggers=(Trigger(f"(?:{_HS_TITLES})\\s+{capital}", before=20, after=60),),
            pattern=(f"(?<![\\w])(?:{_TITLES})\\s+(?P<v>(?:(?:{first})\\s+)?{_SURNAME})(?![\\w])"),
            priority=PERSON_NAME,
            check=_surname_check,
            label="PERSON",
        ),
    )
