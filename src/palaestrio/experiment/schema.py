"""From a YAML tree to an `ExperimentRun`, collecting every problem on the way.

Cascading: each phase starts from the phase before it, merged deeply. Mappings merge
key by key at any depth; any other value, lists included, replaces the earlier one. So
a phase that says only `phase_config: {mode: test}` keeps the earlier `worker` and
`episodes`, and one that lists `agents` replaces all agents. (palaestrAI's docs promise
this; its code replaces whole top-level keys.) A problem in an inherited value is
reported once, at the place it was written.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, cast

from ..components.kinds import binding_problem, environment_arguments, kind_problem
from ..components.names import resolve_name
from ..records import AgentSpec, ComponentSpec, EnvironmentSpec
from .agent_keys import AGENT_OPTIONAL_KEYS, check_load, check_replay
from .checks import (
    Check,
    check_fields,
    check_integer,
    check_list,
    check_mapping,
    check_plain_params,
    check_string,
    merge_nodes,
)
from .component_ids import KnownIds, check_known, known_ids
from .errors import ExperimentFileWarning, Problem
from .model import ExperimentRun, PhaseSpec
from .yamltree import Node

_TOP_KEYS = frozenset({"uid", "seed", "version", "schedule", "run_config"})
_PHASE_KEYS = frozenset({"environments", "agents", "simulation", "phase_config"})
_AGENT_KEYS = frozenset({"name", "brain", "muscle", "objective", "sensors", "actuators"})
_AGENT_UNSUPPORTED = frozenset({"filters"})
_PHASE_CONFIG_UNSUPPORTED = frozenset({"evaluate_every", "store_raw_actuators"})
_MODES = ("train", "test")


def _component(
    node: Node,
    check: Check,
    kind: str,
    *,
    controller: bool = False,
    with_uid: bool = False,
) -> tuple[ComponentSpec, str | None] | None:
    """A `{name, params}` mapping (with `uid` for environments, `conditions` for the
    simulation): the spec and the uid."""
    required = frozenset({"name", "uid"} if with_uid else {"name"})
    optional = frozenset({"params", "conditions"} if controller else {"params"})
    fields = check_fields(node, check, required, optional)
    if fields is None:
        return None
    uid = check_string(fields["uid"], check) if "uid" in fields else None
    params: dict[str, Any] = {}
    params_node = fields.get("params")
    if (
        params_node is not None
        and params_node.value is not None
        and check_mapping(params_node, check) is not None
        and check_plain_params(params_node, check)
    ):
        params = params_node.plain()
    name_node = fields.get("name")
    name = check_string(name_node, check) if name_node is not None else None
    if name_node is None or name is None:
        return None
    if not controller and _fits_from_source(check, name, kind, params, with_uid, uid):
        return (ComponentSpec(resolve_name(name), params), uid) if uid or not with_uid else None
    imported = check.import_class(name, controller)
    if isinstance(imported, str):
        check.at(name_node, imported)
        return None
    resolved, cls = imported
    wrong_kind = kind_problem(cls, kind)
    if wrong_kind is not None:
        check.at(name_node, wrong_kind)
        return None
    given = environment_arguments(cls, uid or "", 0) if with_uid else {}
    unbound = binding_problem(cls, params, given)
    if unbound is not None:
        check.at(params_node if params_node is not None else name_node, unbound)
        return None
    if with_uid and uid is None:
        return None
    return ComponentSpec(resolved, params), uid


def _fits_from_source(
    check: Check, name: str, kind: str, params: dict[str, Any], with_uid: bool, uid: str | None
) -> bool:
    """Whether `name`'s source shows a palaestrAI class of `kind` whose constructor takes
    `params` (see `source_check`): then it is not imported here, where it would be
    imported a second time only to be checked (hARL's: torch, seconds). Any other
    answer is found, and reported, by importing it."""
    found = check.source_class(name)
    if found is None or found.kind != kind:
        return False
    given: dict[str, Any] = {}
    if with_uid:
        given = {"uid": uid or "", "seed": 0}
        if "broker_uri" in found.signature.parameters:
            given["broker_uri"] = None
    if set(given) & set(params):
        return False
    try:
        found.signature.bind(**given, **params)
    except TypeError:
        return False
    check.from_source.add(resolve_name(name))
    return True


def build_run(
    root: Node, source: str, path: str | None, document: str | None = None
) -> tuple[ExperimentRun | None, list[Problem]]:
    """The run `root` describes (parsed from `document`), or None and the problems that
    prevent it."""
    check = Check(source)
    top = check_fields(root, check, _TOP_KEYS, frozenset({"experiment_uid"}))
    if top is None:
        return None, check.problems
    uid = check_string(top["uid"], check) if "uid" in top else None
    experiment_uid = check_string(top["experiment_uid"], check) if "experiment_uid" in top else None
    seed = check_integer(top["seed"], check) if "seed" in top else None
    version = _version(top["version"], check) if "version" in top else None
    run_condition = None
    if "run_config" in top:
        run_config = check_fields(top["run_config"], check, frozenset({"condition"}))
        if run_config is not None and "condition" in run_config:
            found = _component(run_config["condition"], check, "termination condition")
            run_condition = found[0] if found else None
    phases = _schedule(top["schedule"], check) if "schedule" in top else None
    if check.problems:
        return None, check.problems
    assert uid is not None and seed is not None and version is not None
    assert run_condition is not None and phases is not None
    run = ExperimentRun(
        uid=uid,
        seed=seed,
        version=version,
        phases=phases,
        run_condition=run_condition,
        experiment_uid=experiment_uid,
        source=path,
        document=document,
    )
    return run, []


def _version(node: Node, check: Check) -> str | None:
    if type(node.value) in (int, float):
        warnings.warn(
            f"{check.source}:{node.line}: version {node.value!r} is a number; write it as "
            f'a string ("{node.value}") so that e.g. 3.10 does not turn into 3.1',
            ExperimentFileWarning,
            stacklevel=2,
        )
        return str(node.value)
    return check_string(node, check)


def _schedule(node: Node, check: Check) -> list[PhaseSpec] | None:
    entries = check_list(node, check)
    if entries is None:
        return None
    phases: list[PhaseSpec] = []
    merged: Node | None = None
    for index, entry in enumerate(entries):
        mapping = check_mapping(entry, check)
        if mapping is None:
            continue
        if len(mapping) != 1:
            check.at(entry, f"expected one phase (name: settings), found {len(mapping)} keys")
            continue
        ((name, phase),) = mapping.items()
        if phase.value is None:  # a phase that changes nothing
            phase = Node({}, phase.place, phase.line)
        if check_mapping(phase, check) is None:
            continue
        merged = phase if merged is None else merge_nodes(merged, phase)
        built = _phase(merged, name, index, check)
        if built is not None:
            phases.append(built)
    return phases


def _phase(node: Node, name: str, index: int, check: Check) -> PhaseSpec | None:
    hint = " (not set in this phase nor inherited from an earlier one)" if index else ""
    fields = check_fields(node, check, _PHASE_KEYS, missing_hint=hint)
    if fields is None or not fields.keys() >= _PHASE_KEYS:
        return None
    environments = _environments(fields["environments"], check)
    known = known_ids(environments, check)
    agents = _agents(fields["agents"], _written_uids(fields["environments"]), known, name, check)
    simulation = _simulation(fields["simulation"], check)
    config = _phase_config(fields["phase_config"], hint, check)
    if environments is None or agents is None or simulation is None or config is None:
        return None
    mode, workers, episodes = config
    controller, conditions = simulation
    return PhaseSpec(
        name=name,
        mode=cast(Literal["train", "test"], mode),
        workers=workers,
        episodes=episodes,
        environments=environments,
        agents=agents,
        simulation=controller,
        conditions=conditions,
        config=node.plain(),
    )


def _environments(node: Node, check: Check) -> list[EnvironmentSpec] | None:
    entries = check_list(node, check)
    if entries is None:
        return None
    specs: list[EnvironmentSpec] = []
    places: dict[str, str] = {}
    complete = True
    for entry in entries:
        fields = check_fields(
            entry, check, frozenset({"environment"}), frozenset({"reward", "state_transformer"})
        )
        if fields is None or "environment" not in fields:
            complete = False
            continue
        found = _component(fields["environment"], check, "environment", with_uid=True)
        written = fields["environment"].value
        uid_node: Node | None = written.get("uid") if isinstance(written, dict) else None
        uid = None
        if uid_node is not None and isinstance(uid_node.value, str) and uid_node.value:
            uid = uid_node.value
            if uid in places:
                check.at(uid_node, f"environment uid {uid!r} is already used at {places[uid]}")
            places.setdefault(uid, uid_node.place)
        reward_ok, reward = _optional_component(fields, "reward", "reward", check)
        transformer_ok, transformer = _optional_component(
            fields, "state_transformer", "state transformer", check
        )
        if found is None or uid is None or not (reward_ok and transformer_ok):
            complete = False
            continue
        specs.append(EnvironmentSpec(uid, found[0], reward, transformer))
    return specs if complete else None


def _written_uids(node: Node) -> list[str] | None:
    """The environment uids as written, even where the rest of an entry is broken
    (None if the list itself is unusable: then agents' ids are not checked)."""
    if not isinstance(node.value, list):
        return None
    uids = []
    for entry in node.value:
        environment = entry.value.get("environment") if isinstance(entry.value, dict) else None
        if environment is not None and isinstance(environment.value, dict):
            uid = environment.value.get("uid")
            if uid is not None and isinstance(uid.value, str) and uid.value:
                uids.append(uid.value)
    return uids


def _optional_component(
    fields: dict[str, Node], key: str, kind: str, check: Check
) -> tuple[bool, ComponentSpec | None]:
    """Whether the component under `key` is fine (or absent), and its spec."""
    if key not in fields:
        return True, None
    found = _component(fields[key], check, kind)
    return found is not None, found[0] if found else None


def _agents(
    node: Node, environment_uids: list[str] | None, known: KnownIds, phase: str, check: Check
) -> list[AgentSpec] | None:
    entries = check_list(node, check)
    if entries is None:
        return None
    specs: list[AgentSpec] = []
    places: dict[str, str] = {}
    complete = True
    for entry in entries:
        fields = check_fields(
            entry, check, _AGENT_KEYS, AGENT_OPTIONAL_KEYS, unsupported=_AGENT_UNSUPPORTED
        )
        if fields is None:
            complete = False
            continue
        name = check_string(fields["name"], check) if "name" in fields else None
        if name is not None:
            if name in places:
                check.at(fields["name"], f"agent name {name!r} is already used at {places[name]}")
                name = None
            else:
                places[name] = fields["name"].place
        parts = [
            _component(fields[key], check, key) if key in fields else None
            for key in ("brain", "muscle", "objective")
        ]
        ids = [
            _ids(fields[key], key[:-1], (environment_uids, known), phase, check)
            if key in fields
            else None
            for key in ("sensors", "actuators")
        ]
        replay_fine = "replay" not in fields or check_replay(fields["replay"], check)
        load_fine, load = check_load(fields["load"], check) if "load" in fields else (True, None)
        if name is None or None in parts or None in ids or not fields.keys() >= _AGENT_KEYS:
            complete = False
            continue
        if not (replay_fine and load_fine):
            complete = False
            continue
        brain, muscle, objective = (part[0] for part in parts if part is not None)
        sensors, actuators = (found for found in ids if found is not None)
        specs.append(AgentSpec(name, brain, muscle, objective, sensors, actuators, load))
    return specs if complete else None


def _ids(
    node: Node,
    what: str,
    environments: tuple[list[str] | None, KnownIds],
    phase: str,
    check: Check,
) -> list[str] | None:
    environment_uids, known = environments
    entries = check_list(node, check, non_empty=False)
    if entries is None:
        return None
    ids: list[str] = []
    for entry in entries:
        value = check_string(entry, check)
        if value is None:
            continue
        if value in ids:
            check.at(entry, f"{what} {value!r} is listed twice")
        elif environment_uids is not None and not any(
            value.startswith(uid + ".") for uid in environment_uids
        ):
            check.at(
                entry,
                f"{what} {value!r} belongs to no environment of phase {phase!r}; ids are "
                f"'<environment uid>.<id>' with uids {', '.join(map(repr, environment_uids))}",
            )
        else:
            check_known(entry, value, what, known, check)
        ids.append(value)
    return ids


def _simulation(node: Node, check: Check) -> tuple[ComponentSpec, list[ComponentSpec]] | None:
    found = _component(node, check, "simulation controller", controller=True)
    fields = node.value if isinstance(node.value, dict) else {}
    conditions: list[ComponentSpec] = []
    complete = found is not None
    if "conditions" in fields and fields["conditions"].value is not None:
        entries = check_list(fields["conditions"], check, non_empty=False) or []
        for entry in entries:
            condition = _component(entry, check, "termination condition")
            if condition is None:
                complete = False
            else:
                conditions.append(condition[0])
    if not complete or found is None:
        return None
    return found[0], conditions


def _phase_config(node: Node, hint: str, check: Check) -> tuple[str, int, int] | None:
    fields = check_fields(
        node,
        check,
        frozenset({"episodes"}),
        frozenset({"mode", "worker"}),
        _PHASE_CONFIG_UNSUPPORTED,
        missing_hint=hint,
    )
    if fields is None:
        return None
    mode: str | None = "train"
    if "mode" in fields:
        mode = check_string(fields["mode"], check)
        if mode is not None and mode.lower() not in _MODES:
            check.at(fields["mode"], f"unknown mode {mode!r}; expected train or test")
            mode = None
    workers = check_integer(fields["worker"], check, minimum=1) if "worker" in fields else 1
    episodes = check_integer(fields["episodes"], check, minimum=1) if "episodes" in fields else None
    if mode is None or workers is None or episodes is None:
        return None
    return mode.lower(), workers, episodes
