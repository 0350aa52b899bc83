"""``datagen models …``: real small models for offline use (the code lives in ``datagen.models``)."""

from datagen.models import register

__all__ = ["register"]
