"""The texts Locate finds objects by: every Text String in an object's custom attributes
(``x-``, ``y-``) and Names. The store keeps them in an index (``object_texts``), so that
Locate by vCenter's ``x-Name`` reads the few objects holding that text, not every object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.ttlv import STRUCTURE, TEXT_STRING, Item

# Longer texts are not indexed; a Locate for one is not narrowed by the index either.
MAX_INDEXED_TEXT = 512


def is_searchable(name: str) -> bool:
    return name.startswith(("x-", "y-")) or name == "Name"


def texts_of(value: Any) -> list[str]:
    """The Text Strings of an attribute value (a structure's fields included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Item) and value.type == STRUCTURE:
        return [text for field in value.value for text in texts_of(field)]
    if isinstance(value, Item) and value.type == TEXT_STRING:
        return [value.value]
    return []


def indexable(text: str) -> bool:
    return 0 < len(text) <= MAX_INDEXED_TEXT


def searchable_texts(attributes: AttributeSet | Iterable[Attribute]) -> frozenset[str]:
    """What the index holds for an object with these attributes."""
    if isinstance(attributes, AttributeSet):  # every load asks: look at the names first
        attributes = [a for n in attributes.names() if is_searchable(n) for a in attributes.all(n)]
    return frozenset(
        text
        for attribute in attributes
        if is_searchable(attribute.name)
        for text in texts_of(attribute.value)
        if indexable(text)
    )
