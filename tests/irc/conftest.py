"""IRC tests: the ngIRCd fixtures (`ngircd`, `fresh_ngircd`, `irc_client`) from bridges.irc."""

from bridges.irc.pytest_fixtures import fresh_ngircd, irc_client, ngircd

__all__ = ["fresh_ngircd", "irc_client", "ngircd"]
