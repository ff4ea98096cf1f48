"""The real AI command-line clients, driven through a running gateway (``make clients``)."""
