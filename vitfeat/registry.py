"""One registry helper for every pluggable kind of thing in vitfeat, in the spirit of timm's.

Feature families, mask sources, run kinds, pipelines, backbones, segmentation architectures and VMTL
variants are each a :class:`Registry`. A lower layer owns the registry; a higher layer (or a
third-party package) adds to it, either by calling :meth:`Registry.register` or through a package
entry point in the registry's group (``[options.entry_points] vitfeat.families = name = module:attr``),
which is loaded the first time a name is looked up and not found. Every lookup failure raises one
error type, :class:`UnknownNameError`, whose message lists the valid names.
"""

from __future__ import annotations

from contextlib import contextmanager
from importlib import metadata
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry carries; the message lists the valid ones.

    Parameters
    ----------
    kind : str
        The registry's kind (``"classifier"``).
    name : str
        The name asked for.
    valid : list of str
        The names registered.
    """

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        super().__init__(f"unknown {kind} '{name}' (valid: {', '.join(self.valid) or 'none registered'})")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class Registry(Generic[T]):
    """Named objects of one kind, extensible through an entry-point group.

    Parameters
    ----------
    kind : str
        What the entries are, in words (``"feature family"``); used in error messages.
    entry_point_group : str, optional
        Package entry-point group whose entries are loaded on the first lookup miss. An entry point
        may resolve to the object itself or to a module whose import registers it.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Add ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Parameters
        ----------
        name : str
            The entry's name.
        obj : object, optional
            The entry; omitted when used as ``@registry.register("name")``.
        overwrite : bool, default False
            Replace an existing entry of that name instead of raising ``ValueError``.

        Returns
        -------
        object or callable
            ``obj``, or the decorator.
        """
        if obj is None:
            def decorate(target: T) -> T:
                self.register(name, target, overwrite=overwrite)
                return target

            return decorate
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and not overwrite:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent).

        Parameters
        ----------
        name : str
            The entry's name.
        """
        self._entries.pop(name, None)

    @contextmanager
    def temporarily(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` for the duration of a ``with`` block, then restore the previous state.

        Tests use it so that no registration leaks into another test.

        Parameters
        ----------
        name : str
            The entry's name.
        obj : object
            The entry.
        """
        previous = self._entries.get(name)
        self._entries[name] = obj
        try:
            yield obj
        finally:
            if previous is None:
                self._entries.pop(name, None)
            else:
                self._entries[name] = previous

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Parameters
        ----------
        name : str
            The entry's name.

        Returns
        -------
        object

        Raises
        ------
        UnknownNameError
            When no entry (built-in or from an entry point) has that name.
        """
        if name not in self._entries:
            self.load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Sorted names of all entries, entry points included."""
        self.load_entry_points()
        return sorted(self._entries)

    def list(self) -> list[str]:
        """Sorted names of all entries, entry points included (timm's ``list_models``).

        Returns
        -------
        list of str
        """
        return self.names()

    def describe(self, name: str) -> str:
        """One line about the entry ``name``: its ``description`` or ``summary`` attribute, else the
        first line of its docstring.

        Parameters
        ----------
        name : str
            The entry's name.

        Returns
        -------
        str
        """
        entry = self.get(name)
        for attr in ("description", "summary"):
            text = getattr(entry, attr, None)
            if isinstance(text, str) and text.strip():
                return text.strip().splitlines()[0]
        doc = getattr(entry, "__doc__", None) if callable(entry) else None
        return doc.strip().splitlines()[0] if doc and doc.strip() else ""

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, {len(self)} entries)"

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        return [(name, self._entries[name]) for name in self.names()]

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            self.load_entry_points()
        return name in self._entries

    def __len__(self) -> int:
        return len(self.names())

    def load_entry_points(self) -> None:
        """Import this registry's entry points once (each may register itself or be the entry)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in metadata.entry_points(group=self.entry_point_group):
            loaded = point.load()
            if point.name not in self._entries and not _is_module(loaded):
                self._entries[point.name] = loaded


def _is_module(obj: object) -> bool:
    return type(obj).__name__ == "module"


def entry_point_modules(group: str) -> list[str]:
    """Module names that the installed entry points of ``group`` refer to (for the layer test).

    Parameters
    ----------
    group : str
        An entry-point group (``vitfeat.families``).

    Returns
    -------
    list of str
    """
    return sorted({point.value.split(":", 1)[0] for point in metadata.entry_points(group=group)})


__all__ = ["Registry", "UnknownNameError", "entry_point_modules"]
