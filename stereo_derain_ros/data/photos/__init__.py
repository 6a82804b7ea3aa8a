"""Photographs from installed or downloadable packages: collection, licences and the library."""
