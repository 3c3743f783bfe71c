"""The step loop: records, their order and content, workers, controllers, termination,
stopping, and what happens when a component fails."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import yaml

from palaestrio.experiment import ExperimentRun, load_experiment_run_text
from palaestrio.records import (
    EpisodeEnded,
    EpisodeStarted,
    ListSink,
    MuscleAction,
    PhaseEnded,
    PhaseStarted,
    Record,
    WorldState,
)
from palaestrio.simulation import (
    ComponentError,
    SensorActuatorMismatchError,
    run_in_process,
    run_in_process_sync,
)
from test_simulation_components import (
    ObservingMuscle,
    RecordingEnvironment,
    ResettingEnvironment,
)

BASE: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "data" / "experiments" / "base.yml").read_text()
)
COMPONENTS = "test_simulation_components"


def document() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def phase(run: dict[str, Any], index: int = 0) -> dict[str, Any]:
    (settings,) = run["schedule"][index].values()
    return settings  # type: ignore[no-any-return]


def make_run(changed: dict[str, Any] | None = None) -> ExperimentRun:
    return load_experiment_run_text(yaml.safe_dump(changed or document()), "test.yml")


def records_of(run: ExperimentRun) -> list[Record]:
    sink = ListSink()
    run_in_process_sync(run, sink)
    return sink.records


def without_walltime(records: list[Record]) -> list[Record]:
    return [msgspec.structs.replace(record, walltime=0.0) for record in records]


def kinds(records: list[Record]) -> list[str]:
    names = {
        PhaseStarted: "P",
        PhaseEnded: "p",
        EpisodeStarted: "E",
        EpisodeEnded: "e",
        WorldState: "w",
        MuscleAction: "m",
    }
    return [names[type(record)] for record in records]


def test_records_come_in_order_with_the_configured_counts() -> None:
    records = records_of(make_run())  # 2 episodes of 4 steps, two agents
    step = "wmm"
    assert "".join(kinds(records)) == "PE" + step * 4 + "eE" + step * 4 + "ep"
    started = records[0]
    assert isinstance(started, PhaseStarted)
    assert (started.name, started.mode, started.workers, started.episodes) == (
        "phase_0",
        "train",
        1,
        2,
    )
    ended = [r for r in records if isinstance(r, EpisodeEnded)]
    assert [(r.episode, r.steps) for r in ended] == [(0, 4), (1, 4)]
    world = [r for r in records if isinstance(r, WorldState)]
    assert [(r.episode, r.step, r.simtime, r.done) for r in world[:4]] == [
        (0, 0, 1, False),
        (0, 1, 2, False),
        (0, 2, 3, False),
        (0, 3, 4, True),
    ]


def test_record_contents_follow_the_dummies() -> None:
    records = records_of(make_run())
    world = next(r for r in records if isinstance(r, WorldState))
    assert world.environment == "env"
    assert world.sensors == {f"env.{i}": 1 for i in range(10)}  # iter % max_iter after 1 update
    assert world.rewards == {"env.Dummy Reward": 1}
    assert sorted(world.setpoints) == sorted(f"env.{i}" for i in range(10))
    first, second = (r for r in records[:6] if isinstance(r, MuscleAction))
    assert (first.agent, second.agent) == ("first", "second")
    assert first.sensors == {f"env.{i}": 0 for i in range(5)}  # the start readings
    assert second.setpoints == {f"env.{i}": 0 for i in range(5, 10)}  # counting up from 0
    assert first.setpoints == {key: world.setpoints[key] for key in first.setpoints}
    assert first.rewards == {"env.Dummy Reward": 1}
    assert first.objective == 1.0
    # The counting muscle's values go up by one per step, as palaestrAI's do.
    counted = [
        r.setpoints["env.5"] for r in records if isinstance(r, MuscleAction) and r.agent == "second"
    ]
    assert counted == [0, 1, 2, 3, 0, 1, 2, 3]  # counting restarts with each episode


def test_the_same_run_gives_the_same_records_and_another_seed_other_ones() -> None:
    run = make_run()
    assert without_walltime(records_of(run)) == without_walltime(records_of(run))
    other = document()
    other["seed"] = 6
    assert without_walltime(records_of(make_run(other))) != without_walltime(records_of(run))


def test_two_workers_interleave_and_share_the_brain() -> None:
    run = document()
    phase(run)["phase_config"]["worker"] = 2
    records = records_of(make_run(run))
    assert "".join(kinds(records[:3])) == "PEE"
    steps = [(r.worker, r.episode, r.step) for r in records if isinstance(r, WorldState)]
    assert steps[:4] == [(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1)]
    for worker in (0, 1):
        ended = [r for r in records if isinstance(r, EpisodeEnded) and r.worker == worker]
        assert [(r.episode, r.steps) for r in ended] == [(0, 4), (1, 4)]
    # One brain for both counting muscles: each answer is the asking muscle's count + 1,
    # so the two workers count independently but through the same brain object.
    counts = [
        (r.worker, r.setpoints["env.5"])
        for r in records
        if isinstance(r, MuscleAction) and r.agent == "second" and r.episode == 0
    ]
    assert [count for worker, count in counts if worker == 0] == [0, 1, 2, 3]
    assert [count for worker, count in counts if worker == 1] == [0, 1, 2, 3]


def test_taking_turns_lets_one_agent_act_per_step() -> None:
    run = document()
    phase(run)["simulation"]["name"] = "palaestrai.simulation:TakingTurns"
    records = records_of(make_run(run))
    actions = [(r.episode, r.step, r.agent) for r in records if isinstance(r, MuscleAction)]
    assert actions[:5] == [
        (0, 0, "first"),
        (0, 1, "second"),
        (0, 2, "first"),
        (0, 3, "second"),
        (1, 0, "first"),
    ]
    world = [r for r in records if isinstance(r, WorldState)]
    assert sorted(world[0].setpoints) == [f"env.{i}" for i in range(5)]
    assert sorted(world[1].setpoints) == [f"env.{i}" for i in range(5, 10)]


def test_a_condition_can_end_episodes_early() -> None:
    run = document()
    phase(run)["simulation"]["conditions"].append(
        {"name": f"{COMPONENTS}:EpisodeAfterSteps", "params": {"steps": 2}}
    )
    records = records_of(make_run(run))
    ended = [r for r in records if isinstance(r, EpisodeEnded)]
    assert [(r.episode, r.steps) for r in ended] == [(0, 2), (1, 2)]
    last_actions = [r for r in records if isinstance(r, MuscleAction) and r.step == 1]
    assert all(action.done for action in last_actions)
    assert not any(r.done for r in records if isinstance(r, WorldState))  # the env went on


def test_a_condition_can_end_the_phase_early() -> None:
    run = document()
    run["run_config"]["condition"] = {"name": f"{COMPONENTS}:PhaseAfterEpisodes", "params": {}}
    phase(run)["phase_config"]["episodes"] = 5
    records = records_of(make_run(run))
    assert sum(isinstance(r, EpisodeStarted) for r in records) == 1
    assert isinstance(records[-1], PhaseEnded)


def test_stop_ends_the_running_episode_and_phase_after_the_current_step() -> None:
    run = document()
    run["schedule"].append({"phase_1": {"phase_config": {"mode": "test"}}})
    stop = trio.Event()
    sink = ListSink()

    class StopAtSecondStep:
        async def emit(self, record: Record) -> None:
            await sink.emit(record)
            if isinstance(record, WorldState) and record.step == 1:
                stop.set()

    async def main() -> Any:
        with trio.fail_after(30):
            return await run_in_process(make_run(run), StopAtSecondStep(), stop=stop)

    summary = trio.run(main)
    assert (summary.phases, summary.episodes, summary.steps, summary.stopped) == (1, 1, 2, True)
    assert "".join(kinds(sink.records)) == "PE" + "wmm" * 2 + "ep"


async def test_another_task_can_stop_a_long_run() -> None:
    """The loop yields to other trio tasks while it steps."""
    run = document()
    phase(run)["phase_config"]["episodes"] = 1_000_000
    stop = trio.Event()
    results = []

    async def execute() -> None:
        results.append(await run_in_process(make_run(run), ListSink(), stop=stop))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(execute)
            await trio.sleep(0.2)
            stop.set()
    (summary,) = results
    assert summary.stopped
    assert 0 < summary.episodes < 1_000_000


async def test_with_no_yield_interval_other_tasks_run_at_every_step() -> None:
    wakeups = 0
    done = trio.Event()

    async def count() -> None:
        nonlocal wakeups
        while not done.is_set():
            wakeups += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(count)
            summary = await run_in_process(make_run(), ListSink(), yield_interval=0)
            done.set()
    assert summary.steps == 8
    # The loop checkpoints after each step; the counter runs once per scheduler pass,
    # except perhaps in the last one, where the run may finish (and set `done`) first.
    assert wakeups >= summary.steps - 1


def failure_of(run: dict[str, Any]) -> ComponentError:
    with pytest.raises(ComponentError) as caught:
        records_of(make_run(run))
    return caught.value


def test_an_environment_that_raises_is_named_with_where_the_run_was() -> None:
    run = document()
    environment = phase(run)["environments"][0]["environment"]
    environment["name"] = f"{COMPONENTS}:FailingEnvironment"
    environment["params"] = {"fail_at": 3}
    error = failure_of(run)
    assert str(error) == (
        f"environment 'env' ({COMPONENTS}:FailingEnvironment), phase 0 ('phase_0'), "
        "worker 0, episode 0, step 2: RuntimeError: broken at update 3"
    )
    assert isinstance(error.__cause__, RuntimeError)
    assert (error.phase, error.worker, error.episode, error.step) == (0, 0, 0, 2)


def test_an_environment_that_fails_to_start_an_episode_is_named_with_the_episode() -> None:
    run = document()
    phase(run)["environments"][0]["environment"] = {
        "name": f"{COMPONENTS}:SecondStartFails",
        "uid": "env",
    }
    error = failure_of(run)
    assert str(error) == (
        f"environment 'env' ({COMPONENTS}:SecondStartFails), phase 0 ('phase_0'), "
        "worker 0, episode 1: OSError: the simulator is gone"
    )


@pytest.mark.parametrize(
    ("part", "name", "expected"),
    [
        (
            "muscle",
            "RaisingMuscle",
            "muscle of agent 'second' (test_simulation_components:RaisingMuscle), phase 0 "
            "('phase_0'), worker 0, episode 0, step 0: ZeroDivisionError: the muscle divided "
            "by zero",
        ),
        (
            "brain",
            "RaisingBrain",
            "brain of agent 'second' (test_simulation_components:RaisingBrain), phase 0 "
            "('phase_0'), worker 0, episode 0, step 0: KeyError: 'brain trouble'",
        ),
        (
            "objective",
            "RaisingObjective",
            "objective of agent 'second' (test_simulation_components:RaisingObjective), phase 0 "
            "('phase_0'), worker 0, episode 0, step 0: ValueError: no objective today",
        ),
        (
            "objective",
            "NoneObjective",
            "objective of agent 'second' (test_simulation_components:NoneObjective), phase 0 "
            "('phase_0'), worker 0, episode 0, step 0: TypeError: internal_reward returned "
            "None; expected a number",
        ),
    ],
)
def test_an_agent_part_that_raises_is_named(part: str, name: str, expected: str) -> None:
    run = document()
    phase(run)["agents"][1][part] = {"name": f"{COMPONENTS}:{name}", "params": {}}
    error = failure_of(run)
    assert str(error) == expected
    assert error.__cause__ is not None


def test_an_environment_that_returns_garbage_is_named() -> None:
    run = document()
    phase(run)["environments"][0]["environment"]["name"] = f"{COMPONENTS}:GarbageEnvironment"
    error = failure_of(run)
    assert str(error) == (
        f"environment 'env' ({COMPONENTS}:GarbageEnvironment), phase 0 ('phase_0'), "
        "worker 0, episode 0, step 0: AttributeError: 'tuple' object has no attribute 'uid'"
    )


def test_a_muscle_that_returns_no_list_is_named() -> None:
    run = document()
    phase(run)["agents"][0]["muscle"] = {"name": f"{COMPONENTS}:NoneMuscle"}
    error = failure_of(run)
    assert str(error).endswith(
        "step 0: propose_actions returned None as setpoints; expected a list"
    )


def test_an_actuator_value_outside_its_space_names_the_actuator() -> None:
    run = document()
    phase(run)["agents"][0]["muscle"] = {"name": f"{COMPONENTS}:OutOfSpaceMuscle", "params": {}}
    error = failure_of(run)
    assert str(error).endswith(
        "step 0: value for actuator 'env.0' is outside its space: 100 is not in Discrete(100)"
    )


def test_a_setpoint_for_an_actuator_of_another_agent_is_refused() -> None:
    run = document()
    phase(run)["agents"][0]["muscle"] = {"name": f"{COMPONENTS}:ForeignActuatorMuscle"}
    error = failure_of(run)
    assert "muscle of agent 'first'" in str(error)
    assert "uid='env.9'" in str(error)
    assert "which is not one of its actuators ['env.0', 'env.1'" in str(error)


def test_ids_the_environment_does_not_offer_are_found_before_the_first_step() -> None:
    # Validation catches these for environments that declare their ids; the step loop
    # is the last line for those that cannot, so the run is changed after validation.
    run = make_run()
    (first_phase,) = run.phases
    agents = list(first_phase.agents)
    agents[1] = msgspec.structs.replace(
        agents[1],
        sensors=[*agents[1].sensors, "env.10"],
        actuators=["env.x", *agents[1].actuators[1:]],
    )
    run = msgspec.structs.replace(run, phases=[msgspec.structs.replace(first_phase, agents=agents)])
    sink = ListSink()
    with pytest.raises(SensorActuatorMismatchError) as caught:
        run_in_process_sync(run, sink)
    message = str(caught.value)
    assert message.startswith("agent 'second' (palaestrio.simulation:DummyMuscle), phase 0")
    assert "sensors ['env.10'] do not exist; the environments offer sensors ['env.0'" in message
    assert "actuators ['env.x'] do not exist; the environments offer actuators ['env.0'" in message
    assert not any(isinstance(r, WorldState | EpisodeStarted) for r in sink.records)


def test_environment_uids_with_dots_and_dashes_get_their_own_setpoints() -> None:
    """palaestrAI routes setpoints by the text before the first dot, so it drops them
    for uids such as "grid.north" or "grid-b"; palaestrio routes by the exact id."""
    RecordingEnvironment.received.clear()
    run = document()
    environment = {
        "name": f"{COMPONENTS}:RecordingEnvironment",
        "params": {"max_iter": 2},
    }
    phase(run)["environments"] = [
        {"environment": {**environment, "uid": "grid.north"}},
        {"environment": {**environment, "uid": "grid-south"}},
    ]
    phase(run)["agents"][0]["sensors"] = ["grid.north.0"]
    phase(run)["agents"][0]["actuators"] = ["grid.north.0", "grid.north.1"]
    phase(run)["agents"][1]["sensors"] = ["grid-south.0"]
    phase(run)["agents"][1]["actuators"] = ["grid-south.3"]
    records = records_of(make_run(run))
    north = RecordingEnvironment.received["grid.north"]
    south = RecordingEnvironment.received["grid-south"]
    assert [[uid for uid, _ in update] for update in north] == [["0", "1"]] * 2 * 2
    assert [[uid for uid, _ in update] for update in south] == [["3"]] * 2 * 2
    world = [r for r in records if isinstance(r, WorldState)]
    assert [(r.environment, sorted(r.setpoints)) for r in world[:2]] == [
        ("grid.north", ["grid.north.0", "grid.north.1"]),
        ("grid-south", ["grid-south.3"]),
    ]
    assert world[0].rewards == {"grid.north.Dummy Reward": 1}
    assert RecordingEnvironment.shut_down[-2:] == ["grid.north", "grid-south"]


def test_an_environment_with_its_own_reset_is_reset_between_episodes() -> None:
    ResettingEnvironment.calls.clear()
    run = document()
    phase(run)["environments"][0]["environment"]["name"] = f"{COMPONENTS}:ResettingEnvironment"
    phase(run)["phase_config"]["episodes"] = 3
    records_of(make_run(run))
    assert ResettingEnvironment.calls == ["start", "reset", "reset", "shutdown"]


def test_reward_and_state_transformer_of_an_environment() -> None:
    run = document()
    phase(run)["environments"][0] = {
        "environment": {
            "name": f"{COMPONENTS}:RewardUsingEnvironment",
            "uid": "env",
            "params": {"max_iter": 3},
        },
        "reward": {"name": f"{COMPONENTS}:StepReward", "params": {"scale": 10}},
        "state_transformer": {"name": f"{COMPONENTS}:HideSensorZero", "params": {}},
    }
    records = records_of(make_run(run))
    world = [r for r in records if isinstance(r, WorldState)]
    assert [r.rewards for r in world[:3]] == [
        {"env.steps": 10},
        {"env.steps": 20},
        {"env.steps": 30},
    ]
    assert {r.sensors["env.0"] for r in world} == {-1}
    actions = [r for r in records if isinstance(r, MuscleAction) and r.agent == "first"]
    assert actions[1].sensors["env.0"] == -1  # agents see the transformed state
    assert actions[0].objective == 10.0


def test_async_environments_run() -> None:
    run = document()
    phase(run)["environments"][0]["environment"]["name"] = f"{COMPONENTS}:AsyncEnvironment"
    assert kinds(records_of(make_run(run))).count("w") == 8


def test_numpy_values_reach_the_records_as_plain_data() -> None:
    run = document()
    phase(run)["environments"][0]["environment"] = {
        "name": f"{COMPONENTS}:NumpyEnvironment",
        "uid": "np",
        "params": {"steps": 2},
    }
    phase(run)["agents"] = [
        {
            "name": "solo",
            "brain": {"name": "palaestrio.simulation:DummyBrain"},
            "muscle": {"name": f"{COMPONENTS}:BoxMuscle"},
            "objective": {"name": "palaestrio.simulation:DummyObjective"},
            "sensors": ["np.level", "np.pair"],
            "actuators": ["np.power"],
        }
    ]
    records = records_of(make_run(run))
    world = next(r for r in records if isinstance(r, WorldState))
    action = next(r for r in records if isinstance(r, MuscleAction))
    assert world.sensors == {"np.level": 0.25, "np.pair": [1, 2]}
    assert world.setpoints == {"np.power": [0.5, -0.25]}
    assert world.rewards == {"np.score": 1.5}
    assert world.simtime == 15
    assert action.sensors == {"np.level": 0.5, "np.pair": [1, 2]}
    assert action.objective == 1.5
    for record in (world, action):
        for values in (record.sensors, record.setpoints, record.rewards):
            assert all(type(v) in (int, float, list) for v in values.values())
    encoded = msgspec.msgpack.encode(records)
    assert msgspec.msgpack.decode(encoded, type=list[Record]) == records


def test_muscles_see_full_ids_and_remember_their_transitions() -> None:
    for kept in (ObservingMuscle.seen, ObservingMuscle.memory_sizes, ObservingMuscle.proposed):
        kept.clear()
    ObservingMuscle.remembered.clear()
    run = document()
    phase(run)["agents"][0]["muscle"] = {"name": f"{COMPONENTS}:ObservingMuscle"}
    records = records_of(make_run(run))
    assert ObservingMuscle.seen[0] == [f"env.{i}" for i in range(5)]
    assert ObservingMuscle.memory_sizes == list(range(8))
    # The row of step n (seen at step n + 1) holds that step's transition.
    row = ObservingMuscle.remembered[1]  # step 1 of episode 0
    assert [(a.uid, a.value) for a in row.actuator_setpoints] == ObservingMuscle.proposed[1]
    assert all(a.space is not None for a in row.actuator_setpoints)
    assert [s.uid for s in row.sensor_readings] == [f"env.{i}" for i in range(5)]
    action = next(r for r in records if isinstance(r, MuscleAction) and r.step == 1)
    assert [r.value for r in row.rewards] == list(action.rewards.values())
    assert (row.objective, row.done, row.muscle_id) == (action.objective, False, "first.0")


def test_a_component_that_cannot_be_built_at_run_time_is_a_component_error() -> None:
    """A run decoded elsewhere is not validated again; building it still fails well."""
    run = make_run()
    agent = run.phases[0].agents[0]
    broken_muscle = msgspec.structs.replace(agent.muscle, params={"speed": 3})
    broken = msgspec.structs.replace(
        run,
        phases=[
            msgspec.structs.replace(
                run.phases[0],
                agents=[msgspec.structs.replace(agent, muscle=broken_muscle)],
            )
        ],
    )
    with pytest.raises(ComponentError) as caught:
        records_of(broken)
    assert str(caught.value).startswith(
        "muscle of agent 'first' (palaestrio.simulation:DummyMuscle), phase 0 ('phase_0'): "
        "TypeError:"
    )


def test_run_in_process_sync_summarises() -> None:
    summary = run_in_process_sync(make_run())
    assert msgspec.structs.asdict(summary) == {
        "phases": 1,
        "episodes": 2,
        "steps": 8,
        "stopped": False,
    }


def test_summary_travels_as_msgpack() -> None:
    summary = run_in_process_sync(make_run())
    encoded = msgspec.msgpack.encode(summary)
    assert msgspec.msgpack.decode(encoded, type=type(summary)) == summary
