"""The repository's composition: one mixin per aggregate module, none shadowing another's method."""
from __future__ import annotations

import inspect

from storage import repo as repo_package
from storage import repository
from storage.repo import base, documents
from storage.repository import Repository

AGGREGATES = ["institutions", "grants", "accounts", "credentials", "folders", "documents", "catalogue",
              "notifications",
              "davstate", "failures", "epochs", "audit"]


def _mixins():
    return [cls for cls in Repository.__mro__[1:] if cls.__module__.startswith("storage.repo.")]


def test_every_aggregate_module_gives_one_mixin_to_the_repository():
    modules = sorted(cls.__module__.rsplit(".", 1)[1] for cls in _mixins())
    assert modules == sorted(AGGREGATES + ["base"])
    for name in AGGREGATES + ["base"]:
        doc = inspect.getmodule(next(c for c in _mixins() if c.__module__.endswith("." + name))).__doc__
        assert doc and doc.strip(), f"storage/repo/{name}.py has no opening docstring"
    assert repo_package.__doc__ and all(name in repo_package.__doc__ for name in AGGREGATES)


def test_no_method_is_defined_by_two_aggregates():
    owner: dict[str, str] = {}
    for cls in _mixins() + [Repository]:
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("__"):
                assert name not in owner, f"{name} is defined by both {owner[name]} and {cls.__qualname__}"
                owner[name] = cls.__qualname__
    public = {n for n in dir(Repository) if not n.startswith("_") and callable(getattr(Repository, n))}
    assert public <= set(owner)


def test_the_names_callers_import_are_the_shared_ones():
    # ``except Conflict`` in a caller must catch what any aggregate raises
    assert repository.Conflict is base.Conflict
    assert repository.utcnow is base.utcnow and repository.as_utc is base.as_utc
    assert repository.DocumentRow is documents.DocumentRow
