"""The attributes of one managed object: named, ordered, possibly multi-instance.

Instances of one attribute are numbered from 0 (the KMIP Attribute Index). Deleting an
instance renumbers the ones after it, as KMIP 1.x specifies. The set is stored as the TTLV
of a structure of KMIP 1.x ``Attribute`` items: lossless for standard and custom attributes
and independent of the protocol version a client speaks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from kmipd.protocol import ttlv
from kmipd.protocol._generated import Tag
from kmipd.protocol.attributes import Attribute, from_v1_item, to_v1_item
from kmipd.protocol.limits import Limits

# Stored sets are our own writing, but bound them anyway.
_STORED_LIMITS = Limits(
    max_frame_bytes=64 << 20,
    max_field_bytes=16 << 20,
    max_items_per_structure=1_000_000,
    max_items_per_message=10_000_000,
)


class AttributeSet:
    __slots__ = ("_by_name",)

    def __init__(self, attributes: Iterable[Attribute] = ()) -> None:
        self._by_name: dict[str, list[Attribute]] = {}
        for attribute in attributes:
            self.add(attribute)

    def __contains__(self, name: str) -> bool:
        return bool(self._by_name.get(name))

    def __iter__(self) -> Iterator[Attribute]:
        for name, instances in self._by_name.items():
            for index, attribute in enumerate(instances):
                yield Attribute(name, attribute.value, index, attribute.type)

    def names(self) -> list[str]:
        return [name for name, instances in self._by_name.items() if instances]

    def all(self, name: str) -> list[Attribute]:
        return [
            Attribute(name, a.value, i, a.type) for i, a in enumerate(self._by_name.get(name, ()))
        ]

    def get(self, name: str, index: int = 0) -> Attribute | None:
        instances = self._by_name.get(name, [])
        if 0 <= index < len(instances):
            a = instances[index]
            return Attribute(name, a.value, index, a.type)
        return None

    def value(self, name: str, default: Any = None) -> Any:
        instances = self._by_name.get(name)
        return instances[0].value if instances else default

    def count(self, name: str) -> int:
        return len(self._by_name.get(name, ()))

    def set(self, name: str, value: Any, type: int | None = None) -> None:
        """Make ``name`` single-valued with ``value``."""
        self._by_name[name] = [Attribute(name, value, None, type)]

    def add(self, attribute: Attribute) -> int:
        """Append an instance; returns its index."""
        instances = self._by_name.setdefault(attribute.name, [])
        instances.append(Attribute(attribute.name, attribute.value, None, attribute.type))
        return len(instances) - 1

    def replace(self, name: str, index: int, value: Any, type: int | None = None) -> bool:
        instances = self._by_name.get(name, [])
        if not 0 <= index < len(instances):
            return False
        old = instances[index]
        instances[index] = Attribute(name, value, None, type if type is not None else old.type)
        return True

    def delete(self, name: str, index: int | None = None) -> bool:
        """Delete one instance (``index``) or all of them (None); False if none was there."""
        instances = self._by_name.get(name)
        if not instances:
            return False
        if index is None:
            del self._by_name[name]
            return True
        if not 0 <= index < len(instances):
            return False
        del instances[index]
        if not instances:
            del self._by_name[name]
        return True

    def copy(self) -> AttributeSet:
        # Attribute instances are never changed in place (every change replaces one), so a
        # copy may share them: a dict and a list per name, not a decode.
        clone = AttributeSet.__new__(AttributeSet)
        clone._by_name = {name: list(instances) for name, instances in self._by_name.items()}
        return clone

    def to_bytes(self) -> bytes:
        return ttlv.encode(
            ttlv.Item(Tag.TEMPLATE_ATTRIBUTE, ttlv.STRUCTURE, [to_v1_item(a) for a in self])
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AttributeSet:
        # Every request reads its object's stored set again (another node may have changed
        # it), and decoding one costs ~70 us, the largest part of a Get. The sets of the keys
        # in use are few and change rarely, so decoded sets are kept by their exact bytes.
        parsed = _DECODED.get(data)
        if parsed is not None:
            _DECODED.move_to_end(data)
            return parsed.copy()
        item = ttlv.decode(data, _STORED_LIMITS)
        parsed = cls(from_v1_item(child) for child in item.value)
        _DECODED[data] = parsed
        if len(_DECODED) > _DECODED_MAX:
            _DECODED.popitem(last=False)
        return parsed.copy()


# Decoded stored sets by their bytes (least recently used first); attribute sets hold no key
# material, only what the store row holds in the clear anyway.
_DECODED: OrderedDict[bytes, AttributeSet] = OrderedDict()
_DECODED_MAX = 4096
