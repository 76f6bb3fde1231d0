"""What a study is about (model, ratio, space, protocol, sampler), stored with it and checked on
every (re)start so that trials of different experiments never mix."""

from __future__ import annotations

import json
from dataclasses import dataclass

import optuna

from adapruner.errors import AdaprunerError
from adapruner.search.space import SearchSpace


@dataclass
class StudyIdentity:
    """What a study is about; stored as user attributes and checked on every (re)start."""

    model: str
    ratio: float
    space: SearchSpace
    protocol: dict
    sampler: str

    def attrs(self) -> dict:
        """The user attributes of the study."""
        return {"model": self.model, "ratio": self.ratio, "space_hash": self.space.digest(),
                "space": self.space.to_json(), "protocol": self.protocol, "sampler": self.sampler}


def check_identity(study: optuna.Study, identity: StudyIdentity) -> None:
    """Refuse to continue a study created for another model, ratio, space, protocol or sampler."""
    have = study.user_attrs
    want = identity.attrs()
    for key in ("model", "ratio", "space_hash", "protocol", "sampler"):
        if key in have and have[key] != want[key]:
            if key == "space_hash" and isinstance(have.get("space"), dict):
                key, old, new = "space", have["space"], want["space"]
            else:
                old, new = have[key], want[key]
            raise AdaprunerError(
                f"study '{study.study_name}' was created with another {key} ({difference(old, new)}); "
                "refusing to mix them: use another --study or --out")


def difference(old, new) -> str:
    """The first fields where two stored values differ, as ``field: old -> new`` (nested dicts walked)."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = []
        for k in sorted(set(old) | set(new), key=str):
            if old.get(k) != new.get(k):
                inner = difference(old.get(k), new.get(k))
                parts.append(f"{k}.{inner}" if isinstance(old.get(k), dict) and isinstance(new.get(k), dict)
                             else f"{k}: {_text(old.get(k))} -> {_text(new.get(k))}")
        return "; ".join(parts[:3]) + ("; ..." if len(parts) > 3 else "")
    return f"{_text(old)} -> {_text(new)}"


def _text(value) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def open_study(storage, name: str, identity: StudyIdentity, sampler, early_stop) -> optuna.Study:
    """Create the study or load it (after :func:`check_identity`)."""
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=early_stop,
                                direction="minimize", load_if_exists=True)
    check_identity(study, identity)
    if "space_hash" not in study.user_attrs:
        for key, value in identity.attrs().items():
            study.set_user_attr(key, value)
    return study
