"""Free-mail domains: an address there says nothing about a company.

A lead on one of these domains never creates or matches an account by domain.
"""

from __future__ import annotations

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
        "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com",
        "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "protonmail.com",
        "proton.me", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "mail.ru",
        "yandex.com", "yandex.ru", "zoho.com", "qq.com", "163.com", "126.com",
        "fastmail.com", "tutanota.com", "hey.com", "t-online.de", "orange.fr", "free.fr",
        "laposte.net", "libero.it", "seznam.cz", "wp.pl", "rediffmail.com", "naver.com",
    }
)  # fmt: skip


def email_domain(email: str | None) -> str | None:
    """The lower-cased domain of an address, or None when there is none."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower()
    return domain or None


def is_free_mail(domain: str | None) -> bool:
    """Whether the domain is a free-mail provider's."""
    return domain is not None and domain in FREE_MAIL_DOMAINS
