"""The version of skssl, in one place: the package, its files and its metadata read it here."""

__version__ = "0.1.0"
