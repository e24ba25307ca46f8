"""The part of the pytest plugin that runs suites (registered by :mod:`harness.plugin`).

With ``--harness-rig FILE`` it brings the rig up once for the session, gives the suites their role
fixtures (``rig``, ``csms``, ``evse``, ``ev``, ``meter``, ``trace``, ``kpi``, ``reaction``, ``step``,
``evidence``), skips at collection what the rig file says the rig cannot do, turns each test into a
conformance verdict with the id, title and references from the catalogue, and writes the report
folder: report.html, junit.xml, allure-results/, conformance.json, conformance.html and
trace.jsonl. A ``--junitxml`` or ``--html`` given by the user is kept.

Without a rig the fixtures skip and nothing heavy is imported: this module is loaded by every
pytest run in an environment where the harness is installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import html
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

import pytest

from harness.correlation.identity import ev_identity, iso15118_identity
from harness.correlation.sessions import join as join_sessions
from harness.report import conformance
from harness.report.catalogue import CATALOGUE_FILE, Catalogue, CatalogueError, TestCase, load_catalogue
from harness.report.conformance import CaseResult, Kpi, Reaction
from harness.report.evidence import Evidence
from harness.rig.operator import OperatorUnavailable
from harness.rig.role import RoleUnavailable
from harness.trace import Layer, Recorder
from harness.verdicts import Inconclusive, NotApplicable, RigNotReady

if TYPE_CHECKING:
    from harness.rig.config import RigConfig
    from harness.rig.csms import CsmsRole
    from harness.rig.ev import EvRole
    from harness.rig.evse import EvseRole
    from harness.rig.meter import MeterRole
    from harness.rig.rig import Rig

EPIC = "EV charging interoperability"


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass
class HarnessSession:
    config: pytest.Config
    rig_config: RigConfig
    run_id: str
    report_dir: Path
    trace: Recorder
    started: str
    rig: Rig | None = None
    results: dict[str, CaseResult] = field(default_factory=dict)
    catalogues: dict[Path, Catalogue | None] = field(default_factory=dict)
    #: the catalogued cases this run set out to run, in order
    planned: list[pytest.Item] = field(default_factory=list)
    #: why the run stopped before the end (None: it ran every planned case)
    stop_reason: str | None = None
    #: what the rig check found before the run (one line each), when it stopped the run
    rig_problems: list[str] = field(default_factory=list)
    #: test modules that could not be collected (pytest then runs nothing)
    collection_errors: list[str] = field(default_factory=list)
    #: the pytest-xdist worker this session is (None: a serial run, or the controller)
    worker: str | None = None
    #: a parallel run's controller: the verdicts counted over the workers' merged reports
    merged_summary: dict[str, int] | None = None

    def catalogue_for(self, path: Path) -> Catalogue | None:
        return find_catalogue(path, self.catalogues)

    def stop(self, reason: str, session: pytest.Session | None = None) -> None:
        """The run ends after the current case: the rest are not run, for ``reason``."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.trace.emit(Layer.RIG, "RunStopped", f"the run stops: {reason}", src="harness",
                            payload={"reason": reason})
        if session is not None:
            session.shouldstop = reason


_SESSION = pytest.StashKey[HarnessSession]()


def _session(config: pytest.Config) -> HarnessSession | None:
    return config.stash.get(_SESSION, None)


def configure(config: pytest.Config) -> None:
    """Called by :func:`harness.plugin.pytest_configure`, before the report plugins configure:
    with a rig, the run's session, its report folder and where each report format goes."""
    rig_file = config.getoption("harness_rig")
    worker = getattr(config, "workerinput", None)
    if not rig_file or (worker is not None and "harness_report_dir" not in worker):
        return
    from harness.rig.config import RigFileError, load_rig

    try:
        rig_config = load_rig(rig_file)
    except RigFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    if worker is not None:
        _configure_worker(config, rig_config, worker)
        return
    if config.getoption("numprocesses", None) and (rig_config.is_lab or config.getoption("harness_place")
                                                   or rig_config.labgrid.place):
        raise pytest.UsageError("parallel runs (-n) bring up one rig per worker: emulated rigs only, not a lab "
                                "rig or a labgrid place")
    rig_config, place_notes = _place(config, rig_config)
    run_id = config.getoption("harness_run_id") or new_run_id()
    report_option = config.getoption("harness_report_dir")
    report_dir = Path(report_option) if report_option else Path(config.rootpath) / "reports" / run_id
    report_dir.mkdir(parents=True, exist_ok=True)
    _point_latest(report_dir)
    # The report formats come from their own plugins; configured here so every run writes all of
    # them, into the report folder unless the user named a place (--junitxml, --html, --alluredir).
    option = config.option
    if not getattr(option, "xmlpath", None):
        option.xmlpath = str(report_dir / "junit.xml")
    if not getattr(option, "htmlpath", None):
        option.htmlpath = str(report_dir / "report.html")
        option.self_contained_html = True
    if not getattr(option, "allure_report_dir", None):
        option.allure_report_dir = str(report_dir / "allure-results")
    trace = Recorder(report_dir / "trace.jsonl")
    if place_notes:
        trace.emit(Layer.RIG, "PlaceAcquired", f"labgrid place {place_notes[0]} acquired", src="rig",
                   payload={"place": place_notes[0], "resources": place_notes[1:]})
    config.stash[_SESSION] = HarnessSession(config, rig_config, run_id, report_dir, trace, conformance.utc_now())


def _configure_worker(config: pytest.Config, rig_config: Any, worker: dict[str, Any]) -> None:
    """A pytest-xdist worker of ``harness run -n N``: its own rig and its own report folder,
    ``workers/<id>/`` in the run's, which the controller merges when the run ends
    (:mod:`harness.report.merge`); Allure results go straight to the run's folder."""
    name = str(worker.get("workerid", "gw"))
    run_dir = Path(worker["harness_report_dir"])
    report_dir = run_dir / "workers" / name
    report_dir.mkdir(parents=True, exist_ok=True)
    config.option.allure_report_dir = str(run_dir / "allure-results")
    trace = Recorder(report_dir / "trace.jsonl")
    session = HarnessSession(config, rig_config, f"{worker['harness_run_id']}-{name}", report_dir, trace,
                             conformance.utc_now())
    session.worker = name
    config.stash[_SESSION] = session


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller, for each worker it starts: where the run's report goes."""
    harness = _session(node.config)
    if harness is not None:
        node.workerinput["harness_report_dir"] = str(harness.report_dir.resolve())
        node.workerinput["harness_run_id"] = harness.run_id


def _place(config: pytest.Config, rig_config: Any) -> tuple[Any, list[str]]:
    """Acquire the run's labgrid place (``--harness-place`` or the rig file's ``labgrid.place``)
    and put its devices into the rig; released when pytest unconfigures, also after Ctrl-C. A
    place held by someone else stops the run at once, naming the holder (exit status 3)."""
    name = config.getoption("harness_place") or rig_config.labgrid.place
    if not name:
        return rig_config, []
    import atexit

    from harness.rig.labgrid import Place, PlaceBusy, PlaceError, apply

    place = Place(name, rig_config.labgrid.coordinator)
    try:
        place.acquire()
    except PlaceBusy as exc:
        pytest.exit(str(exc), returncode=3)
    except PlaceError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.add_cleanup(place.release)
    atexit.register(place.release)  # an interpreter that ends without unconfiguring
    try:
        rig_config, notes = apply(rig_config, place.resources(), place)
    except PlaceError as exc:
        place.release()
        raise pytest.UsageError(str(exc)) from None
    return rig_config, [f"{name!r} at {place.coordinator}", *notes]


def _point_latest(report_dir: Path) -> None:
    latest = report_dir.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(report_dir.name, target_is_directory=True)
    except OSError:
        pass  # a file system without symlinks: reports/<run-id> is still there


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = _session(config)
    if session is None:
        return []
    rig = session.rig_config
    return [f"harness rig: {rig.name} ({rig.kind}) from {rig.path}", f"harness reports: {session.report_dir}"]


# -- catalogue and collection ------------------------------------------------------------------

def find_catalogue(path: Path, cache: dict[Path, Catalogue | None]) -> Catalogue | None:
    """The catalogue.yaml governing ``path``: the nearest one in its folder or above."""
    folder = path if path.is_dir() else path.parent
    if folder in cache:
        return cache[folder]
    candidate = folder / CATALOGUE_FILE
    found: Catalogue | None
    if candidate.is_file():
        found = load_catalogue(candidate)
    elif folder.parent != folder:
        found = find_catalogue(folder.parent, cache)
    else:
        found = None
    cache[folder] = found
    return found


_CASE = pytest.StashKey[TestCase]()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, pytest.CollectReport,
                                                                         pytest.CollectReport]:
    report = yield
    harness = _session(collector.config)
    if harness is not None and report.failed:
        harness.collection_errors.append(report.nodeid or "(the test path)")
    return report


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    known = _session(config)
    # the run's own cache, so the report can name the catalogues it used
    cache: dict[Path, Catalogue | None] = known.catalogues if known is not None else {}
    for item in items:
        marker = item.get_closest_marker("case")
        try:
            catalogue = find_catalogue(Path(item.path), cache)
        except CatalogueError as exc:
            raise pytest.UsageError(str(exc)) from None
        if catalogue is None:
            continue
        if marker is None or not marker.args:
            problems.append(f"{item.nodeid}: a conformance test needs @pytest.mark.case('<id>') from {catalogue.path}")
            continue
        try:
            item.stash[_CASE] = case = catalogue.case(str(marker.args[0]))
        except CatalogueError as exc:
            problems.append(f"{item.nodeid}: {'; '.join(exc.problems)} ({exc.path})")
            continue
        _label(config, item, case)  # at collection: a skipped case is still named in every report
    if problems:
        raise pytest.UsageError("test cases without a catalogue entry:\n  " + "\n  ".join(problems))
    harness = _session(config)
    if harness is not None:
        _decide_capabilities(harness, items)


def _decide_capabilities(harness: HarnessSession, items: list[pytest.Item]) -> None:
    """Which cases the rig cannot run, from the rig file alone: a case that requires a capability
    the rig does not offer is skipped before the rig comes up (and if no case is left, it never
    does)."""
    from harness.rig.drivers import offered_capabilities

    offered = offered_capabilities(harness.rig_config)
    under_test = harness.rig_config.under_test
    for item in items:
        case = item.stash.get(_CASE, None)
        if case is not None and case.suite.dut not in under_test:
            item.add_marker(pytest.mark.skip(reason=_not_under_test(harness.rig_config, case.suite.dut)))
            continue
        lacking = [c for c in _required(item) if c not in offered]
        if lacking:
            item.add_marker(pytest.mark.skip(reason=f"needs the rig capability {lacking[0]!r}, which "
                                                    f"{harness.rig_config.name!r} does not offer"))


def _not_under_test(rig: Any, dut: str) -> str:
    """Why a case that tests ``dut`` ("evse", "ev") does not run on ``rig``."""
    if dut == "evse":
        tested, there = "the charger", f"the harness's reference EVSE (evse.kind: {rig.evse.kind})"
    else:
        tested, there = "the EV", ("the harness's EV emulator" if rig.ev.kind == "emulated"
                                   else f"no EV the harness can judge (ev.kind: {rig.ev.kind})")
    return (f"this case tests {tested}, which on {rig.name!r} is {there}; this rig's device under test is "
            f"the {' and the '.join('charger' if side == 'evse' else 'EV' for side in sorted(rig.under_test))}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The cases this run will run."""
    harness = _session(session.config)
    if harness is not None:
        harness.planned = [item for item in session.items if _CASE in item.stash]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """The rig check before the first case: a rig that cannot come up stops the run here, one line
    per problem, instead of an error per case (not for --collect-only, which runs nothing)."""
    harness = _session(session.config)
    if harness is None or not harness.planned or session.config.option.collectonly:
        return
    from harness.rig.check import probe

    problems = [r for r in probe(harness.rig_config) if not r.ok]
    busy = next((r for r in problems if r.what == "lock"), None)
    if busy is not None:  # another run holds the lab rig: stop at once, naming the holder
        harness.stop(busy.detail)
        pytest.exit(busy.detail, returncode=3)
    if problems:
        harness.rig_problems = [f"{r.what}: {r.detail}" for r in problems]
        harness.stop(f"the rig {harness.rig_config.name!r} cannot be used ({len(problems)} problem"
                     f"{'s' if len(problems) > 1 else ''}, see `harness rig check`)")
        raise session.Interrupted(harness.stop_reason)


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """The rig named by ``--harness-rig``, up for the whole session and always torn down."""
    session = _session(request.config)
    if session is None:
        pytest.skip("conformance suites need a rig: run them with `harness run` or `pytest --harness-rig FILE`")
    from harness.rig.lock import RigBusy
    from harness.rig.rig import Rig

    the_rig = Rig(session.rig_config, run_dir=session.report_dir, trace=session.trace, run_id=session.run_id)
    try:
        the_rig.setup()
    except RigBusy as exc:
        session.stop(str(exc))
        pytest.exit(str(exc), returncode=3)
    except Exception as exc:  # one error with the cause, the rest not run
        session.stop(f"the rig failed to come up: {exc}", request.session)
        raise RigNotReady(f"the rig failed to come up: {exc}") from None
    session.rig = the_rig
    _announce_csms(request.config, the_rig)
    try:
        yield the_rig
    finally:
        the_rig.teardown()


def _announce_csms(config: pytest.Config, the_rig: Rig) -> None:
    """Where the charger under test must connect, as soon as the mock CSMS listens."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    server = the_rig.csms.server
    if reporter is None or server is None:
        return
    station = the_rig.evse.station_id
    profile = the_rig.config.evse.ocpp.security_profile
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line("")
        for url in server.charger_urls(station):
            reporter.write_line(f"charger URL: {url} (station {station!r}, security profile {profile})")


@pytest.fixture(scope="session")
def trace(rig: Rig) -> Recorder:
    return rig.trace


@pytest.fixture
def csms(rig: Rig) -> CsmsRole:
    return rig.csms


@pytest.fixture
def evse(request: pytest.FixtureRequest, rig: Rig) -> EvseRole:
    """The EVSE under test, connected to the CSMS and registered (BootNotification accepted).
    A charger that is not there within the boot timeout stops the run after this case."""
    try:
        rig.evse.wait_registered(rig.config.evse.boot_timeout, expected=False)
    except RigNotReady as exc:
        session = _session(request.config)
        if session is not None:
            session.stop(str(exc), request.session)
        raise
    return rig.evse


@pytest.fixture
def ev(rig: Rig) -> EvRole:
    if "ev" not in rig.evse.capabilities:
        pytest.skip("this rig has no EV")
    return rig.ev


@pytest.fixture
def meter(rig: Rig) -> MeterRole:
    """The power analyzer between EVSE and EV (simulated on emulated rigs)."""
    if not rig.meter.present:
        pytest.skip("this rig has no power analyzer (meter.kind: none)")
    return rig.meter


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """``evidence.attach(path, kind="plot")``: a file for this case's reports (conformance,
    report.html, Allure)."""
    session = _session(request.config)
    return request.node.stash.setdefault(_EVIDENCE, Evidence(session.report_dir if session else None))


@pytest.fixture
def kpi(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record a key performance indicator of this test case: ``kpi("boot_s", 0.4, "s")``."""
    results: list[Kpi] = request.node.stash.setdefault(_KPIS, [])

    def record(name: str, value: float, unit: str = "", description: str = "") -> None:
        results.append(Kpi(name, float(value), unit, description))
        request.node.user_properties.append((f"kpi.{name}", f"{value:g}{(' ' + unit) if unit else ''}"))
        session = _session(request.config)
        if session is not None:
            session.trace.emit(Layer.VERDICT, "Kpi", f"{name} = {value:g} {unit}".strip(), src="harness",
                               payload={"name": name, "value": value, "unit": unit})

    return record


@pytest.fixture
def reaction(request: pytest.FixtureRequest) -> Callable[..., Reaction]:
    """Put what the DUT was expected to do on one protocol beside what it did, for the reports:
    ``reaction("ISO 15118", "AuthorizationRes", expected="FAILED_CertificateExpired",
    observed=code, note="...")``; ``agrees`` when the two may differ in words and still agree. It
    does not decide the verdict (asserts do); ``judged=True`` says that an assert in the case
    rests on this row."""
    results: list[Reaction] = request.node.stash.setdefault(_REACTIONS, [])
    session = _session(request.config)

    def record(protocol: str, what: str, *, expected: str, observed: str, judged: bool = False,
               note: str = "", agrees: bool | None = None) -> Reaction:
        row = Reaction(protocol, what, expected, observed, judged, note, agrees)
        results.append(row)
        if session is not None:
            session.trace.emit(Layer.VERDICT, "Reaction", f"{protocol} {what}: expected {expected}, observed "
                               f"{observed}" + ("" if row.matches else " (differs)"), src="harness",
                               payload={**dataclasses.asdict(row), "matches": row.matches})
        return row

    return record


@pytest.fixture
def step(request: pytest.FixtureRequest) -> Callable[[str], contextlib.AbstractContextManager]:
    """``with step("plug in the EV"):`` -- a named step in the timeline and in Allure."""
    session = _session(request.config)

    @contextlib.contextmanager
    def named(title: str) -> Iterator[None]:
        import allure

        if session is not None:
            session.trace.emit(Layer.VERDICT, "Step", title, src="harness")
        with allure.step(title):
            yield

    return named


_KPIS = pytest.StashKey[list[Kpi]]()
_REACTIONS = pytest.StashKey[list[Reaction]]()
_EVIDENCE = pytest.StashKey[Evidence]()
_CAPTURES = pytest.StashKey[list]()
_START = pytest.StashKey[tuple]()
#: the timeline clock when the case began (its own events are read from there on)
_STARTED_AT = pytest.StashKey[float]()
_PHASES = pytest.StashKey[dict]()


@pytest.fixture(autouse=True)
def _conformance_case(request: pytest.FixtureRequest) -> Iterator[None]:
    """Around every catalogued test: label it, mark it on the timeline, restore the rig after."""
    case = request.node.stash.get(_CASE, None)
    session = _session(request.config)
    if case is None or session is None:
        yield
        return
    the_rig: Rig = request.getfixturevalue("rig")
    session.trace.test = request.node.nodeid
    first = session.trace.emit(Layer.VERDICT, "TestStarted", f"{case.id} {case.title}", src="harness",
                               payload={"nodeid": request.node.nodeid})
    request.node.stash[_START] = (first.seq, time.monotonic(), conformance.utc_now())

    request.node.stash[_STARTED_AT] = first.mono
    the_rig.link.begin_case(_instance_name(case.id, request.node.nodeid))
    try:
        yield
    finally:
        captured = the_rig.link.end_case()  # the link's pcap and TLS key log of this case
        if captured is not None:
            # as paths within the report folder: the report travels, the folder it was made in does not
            request.node.stash[_CAPTURES] = [_within(p, session.report_dir) for p in (captured.pcap, captured.keylog)
                                             if p is not None]
        try:
            # after Ctrl-C the rig may already be down; a stopped run has nothing to restore it for
            if the_rig.up and session.stop_reason is None:
                the_rig.restore()
        except Exception as exc:  # recorded as this case's teardown error, the next case starts clean
            session.trace.emit(Layer.RIG, "RestoreFailed", f"rig restore after {case.id} failed: {exc!r}",
                               src="rig")
            if isinstance(exc, RigNotReady):  # the DUT is gone: the cases after this one cannot run
                session.stop(f"after {case.id}: {exc}", request.session)
            raise
        finally:
            session.trace.test = ""


def _instance_name(case_id: str, nodeid: str) -> str:
    return case_id + (f"[{nodeid.rsplit('[', 1)[1]}" if "[" in nodeid else "")


def _required(item: pytest.Item) -> list[str]:
    return [str(c) for marker in item.iter_markers("requires") for c in marker.args]


def _label(config: pytest.Config, item: pytest.Item, case: TestCase) -> None:
    """The case's id, title and references on the item: for junit.xml and report.html (user
    properties) and Allure (its label markers, read when the case starts, also when it is skipped)."""
    item.user_properties.append(("case_id", case.id))
    item.user_properties.append(("case_title", case.title))
    item.user_properties.append(("suite", case.suite.id))
    if case.reference_list():
        item.user_properties.append(("references", ", ".join(case.reference_list())))
    if not config.pluginmanager.hasplugin("allure_pytest"):
        return
    labels = [("epic", EPIC), ("feature", case.suite.title), ("story", case.title), ("case_id", case.id)]
    labels += [("tag", f"{kind}:{reference}") for kind, references in case.references.items()
               for reference in references]
    for label_type, value in labels:
        item.add_marker(pytest.mark.allure_label(value, label_type=label_type))



#: at most this many messages of a case go into its Allure attachment (the trace has them all)
ALLURE_MESSAGES = 2000


def _attach_ocpp_log(session: HarnessSession, first_seq: int) -> None:
    """The case's exchange for Allure: the OCPP log as text, and the OCPP and V2G messages with
    their payloads as the black-box observers (the CSMS, the EV) saw them, one JSON object per line."""
    import allure

    lines = [f"{e.mono:12.3f}  {e.observer:5}  {e.direction:12}  {e.summary}"
             for e in session.trace if e.seq >= first_seq and e.layer in (Layer.OCPP, Layer.PILOT, Layer.FAULT)
             and e.observer in ("csms", "ev", "")]
    allure.attach("\n".join(lines) or "(no OCPP traffic)", name="OCPP log", attachment_type=allure.attachment_type.TEXT)
    messages = [e for e in session.trace if e.seq >= first_seq and e.layer in (Layer.OCPP, Layer.V2G)
                and e.observer in ("csms", "ev")]
    if messages:
        body = "\n".join(e.to_json() for e in messages[:ALLURE_MESSAGES])
        if len(messages) > ALLURE_MESSAGES:
            body += f"\n{{\"note\": \"{len(messages) - ALLURE_MESSAGES} more messages in trace.jsonl\"}}"
        allure.attach(body, name="OCPP and V2G messages (jsonl)", attachment_type=allure.attachment_type.TEXT,
                      extension="jsonl")


def _allure_environment(config: pytest.Config, harness: HarnessSession, document: dict[str, Any]) -> None:
    """environment.properties and executor.json in the Allure results: which rig, DUT and harness
    the run was, for Allure's Environment and Executor panels."""
    folder = getattr(config.option, "allure_report_dir", None)
    if not folder or not Path(folder).is_dir():
        return
    run = document["run"]
    dut = run.get("dut") or {}
    values = {"Rig": f"{run['rig'].get('name')} ({run['rig'].get('kind')})", "Time scale": run["rig"].get("time_scale"),
              "DUT": " ".join(str(dut.get(k)) for k in ("vendor", "model", "firmware_version") if dut.get(k)),
              "Station": dut.get("station_id"), "OCPP": dut.get("ocpp_version"),
              "ISO 15118": ", ".join((dut.get("iso15118") or {}).get("protocols", [])),
              "Harness": f"{run.get('harness_version')} {run.get('harness_commit') or ''}".strip()}
    lines = [f"{key.replace(' ', '.')}={str(value).replace(chr(10), ' ')}" for key, value in values.items() if value]
    (Path(folder) / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    executor = {"name": "EV charging interoperability harness", "type": "harness", "buildName": run["id"],
                "reportName": f"Conformance {run['id']}"}
    (Path(folder) / "executor.json").write_text(json.dumps(executor), encoding="utf-8")


# -- verdicts ---------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    case = item.stash.get(_CASE, None)
    if case is not None and item.config.pluginmanager.hasplugin("allure_pytest"):
        import allure

        # the catalogue's title, with the parameters, instead of the test function's name
        allure.dynamic.title(f"{_instance_name(case.id, item.nodeid)} {case.title}")
    try:
        return (yield)
    except NotApplicable as exc:  # the DUT does not offer what the case checks: a skip, with its words
        pytest.skip(f"not applicable: {exc}")
    except (RoleUnavailable, OperatorUnavailable) as exc:  # the rig cannot do what the case needs
        pytest.skip(f"the rig cannot do this: {exc}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport,
                                                                                      pytest.TestReport]:
    report = yield
    _after_report(item, call, report)
    return report


def _after_report(item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> None:
    if report.when == "call" and _EVIDENCE in item.stash:
        _html_extras(item, report, item.stash[_EVIDENCE])
    session = _session(item.config)
    case = item.stash.get(_CASE, None)
    if session is None or case is None:
        return
    phases = item.stash.setdefault(_PHASES, {})
    phases[report.when] = (report, call.excinfo)
    report.harness_verdict = verdict_of(phases)[0]  # type: ignore[attr-defined]  # for the report.html row
    if report.when == "call" and _START in item.stash:
        _attach_ocpp_log(session, item.stash[_START][0])  # while Allure still has the test open
    if (report.when == "teardown" or (report.when == "setup" and not report.passed)) \
            and item.nodeid not in session.results:  # one verdict per case, also after a failed set-up
        _conclude(session, item, case, phases)


def _html_extras(item: pytest.Item, report: pytest.TestReport, evidence: Evidence) -> None:
    plugin = item.config.pluginmanager.getplugin("html")
    if plugin is None or not evidence.files:
        return
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - pytest-html is a dependency
        return
    # pytest-html reads the extras it renders from this attribute of the report
    report.extras = list(getattr(report, "extras", [])) + evidence.html_extras(extras)  # type: ignore[attr-defined]


def verdict_of(phases: dict[str, tuple[pytest.TestReport, Any]]) -> tuple[str, str]:
    """The conformance verdict and its message from the reports of setup, call and teardown."""
    setup_report, setup_exc = phases["setup"]
    if setup_report.skipped:
        return "skip", _skip_reason(setup_report)
    if setup_report.failed:
        return "error", f"set-up failed: {_message(setup_exc, setup_report)}"
    call = phases.get("call")
    verdict, message = "pass", ""
    if call is not None:
        report, excinfo = call
        if hasattr(report, "wasxfail"):
            verdict, message = ("inconc", f"expected failure: {report.wasxfail}") if report.skipped else ("pass", "")
        elif report.skipped:
            verdict, message = "skip", _skip_reason(report)
        elif report.failed:
            exception = excinfo.value if excinfo is not None else None
            if isinstance(exception, Inconclusive):
                verdict = "inconc"
            elif isinstance(exception, AssertionError):
                verdict = "fail"
            else:
                verdict = "error"  # the harness or the rig broke, not the DUT
            message = _message(excinfo, report)
    teardown = phases.get("teardown")
    if teardown is not None and teardown[0].failed and verdict in ("pass", "fail", "inconc"):
        extra = f"teardown failed: {_message(teardown[1], teardown[0])}"
        return ("error", extra) if verdict == "pass" else (verdict, f"{message}\n{extra}")
    return verdict, message


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr or "")


def _message(excinfo: Any, report: pytest.TestReport) -> str:
    if excinfo is not None:
        text = str(excinfo.value)
        if isinstance(excinfo.value, AssertionError) and "\nassert " in text and not text.startswith("assert "):
            # a check with its own words: those, without pytest's rewritten expression after them
            text = text.split("\nassert ", 1)[0]
        elif isinstance(excinfo.value, AssertionError) and (text.startswith("assert ") or not text):
            # a bare check: the line of the test that failed, not pytest's "where False = ..." internals
            text = f"the check `{_failed_statement(excinfo) or text.splitlines()[0]}` did not hold"
        if isinstance(excinfo.value, AssertionError):
            return text[:4000]  # the rule the device broke, in the check's words: no Python type in front
        return f"{excinfo.typename}: {text}"[:4000]  # the harness or the rig broke: what broke says where
    return str(report.longreprtext or "")[:4000]


def _failed_statement(excinfo: Any) -> str | None:
    """The source of the statement that raised (one line), or None when it cannot be read."""
    try:
        statement = str(excinfo.traceback[-1].statement)
    except Exception:  # noqa: BLE001 - the message then falls back to pytest's first line
        return None
    return " ".join(line.strip() for line in statement.splitlines()) or None


def _conclude(session: HarnessSession, item: pytest.Item, case: TestCase, phases: dict) -> None:
    verdict, message = verdict_of(phases)
    start = item.stash.get(_START, (None, time.monotonic(), conformance.utc_now()))
    _record_verdict(session, item, case, verdict, message, start, timed=True)


def _record_verdict(session: HarnessSession, item: pytest.Item, case: TestCase, verdict: str, message: str,
                    start: tuple | None, *, timed: bool) -> None:
    """The case's one TestVerdict on the timeline and its result. ``start``: the timeline sequence,
    monotonic and wall time it started at (None: it never started); ``timed``: it ran to its end."""
    first_seq, started_mono, started = start if start is not None else (None, None, "")
    last = session.trace.emit(Layer.VERDICT, "TestVerdict", f"{case.id}: {verdict}", src="harness",
                              payload={"nodeid": item.nodeid, "verdict": verdict, "message": message})
    parameters = {k: _plain(v) for k, v in getattr(getattr(item, "callspec", None), "params", {}).items()}
    session.results[item.nodeid] = CaseResult(
        case=case, nodeid=item.nodeid, parameters=parameters, verdict=verdict, message=message, started=started,
        duration_s=time.monotonic() - started_mono if timed else 0.0, kpis=list(item.stash.get(_KPIS, None) or ()),
        reactions=list(item.stash.get(_REACTIONS, None) or ()),
        trace_span=(first_seq, last.seq) if first_seq is not None else None,
        evidence={**(item.stash[_EVIDENCE].by_kind() if _EVIDENCE in item.stash else {}),
                  **({"captures": item.stash[_CAPTURES]} if _CAPTURES in item.stash else {})},
        sessions=[joined.as_dict() for joined in join_sessions(
            session.trace.select(since=item.stash.get(_STARTED_AT, None), test=item.nodeid))] if timed else [])


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


# -- report.html ------------------------------------------------------------------------------

@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(1, "<th>Case</th>")
    cells.insert(2, "<th>Verdict</th>")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport | pytest.CollectReport, cells: list[str]) -> None:
    # a collection error has a row too, and no user properties
    properties = dict(getattr(report, "user_properties", ()))
    case_id, title = str(properties.get("case_id", "")), str(properties.get("case_title", ""))
    cells.insert(1, f'<td title="{html.escape(title)}">{html.escape(case_id)}</td>')
    # the verdict as far as this report tells; conformance.json has the final one, teardown included
    cells.insert(2, f"<td>{getattr(report, 'harness_verdict', '')}</td>")


# -- the report folder ------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Before pytest-html renders report.html: put rig and DUT in its environment table."""
    harness = _session(session.config)
    if harness is not None:
        _why_stopped(harness, session, exitstatus)
        if harness.worker is None:
            _environment_table(session.config, harness, _dut(harness))


def _within(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside, else as :func:`shown_path` shows it."""
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return shown_path(path)


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as a report shows it: relative to the working directory when it lies inside, else its
    file name alone. A report travels to other people; the folders of the machine it was made on
    are nobody's business there."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return resolved.name


def shown_command(argv: list[str]) -> list[str]:
    """A command line as a report shows it: each absolute path, alone or after ``--option=``, as
    :func:`shown_path` shows it."""
    shown = []
    for arg in argv:
        option, equals, value = arg.partition("=")
        if equals and option.startswith("-") and os.path.isabs(value):
            shown.append(f"{option}={shown_path(value)}")
        else:
            shown.append(shown_path(arg) if os.path.isabs(arg) else arg)
    return shown


@pytest.hookimpl(hookwrapper=True, specname="pytest_sessionfinish")
def pytest_sessionfinish_conformance(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """After every other sessionfinish (pytest tears the session fixtures, the rig among them,
    down in its own): write conformance.json and conformance.html from the finished timeline."""
    yield
    harness = _session(session.config)
    if harness is None:
        return
    if harness.rig is not None and harness.rig.up:
        harness.rig.teardown()
    _not_run(harness)  # why the run stopped is known: the tryfirst sessionfinish asked

    rig = harness.rig_config
    rig_info = {"name": rig.name, "kind": rig.kind, "file": shown_path(rig.path) if rig.path else None,
                "time_scale": rig.time_scale, "evse": rig.evse.kind, "ev": rig.ev.kind, "csms": rig.csms.kind,
                "meter": rig.meter.kind, "pilot": rig.pilot.kind, "link": rig.link.kind}
    catalogues = sorted({c.path for c in harness.catalogues.values() if c is not None})
    provenance = {"harness_commit": conformance.source_commit(),
                  "catalogues": {shown_path(path): conformance.file_digest(path) for path in catalogues}}
    document = conformance.build(run_id=harness.run_id, started=harness.started, finished=conformance.utc_now(),
                                 rig=rig_info, dut=_dut(harness), results=list(harness.results.values()),
                                 command=shown_command(sys.argv),
                                 stopped=harness.stop_reason, rig_problems=harness.rig_problems,
                                 ev=_ev_under_test(harness), provenance=provenance)
    trace = harness.trace
    if harness.worker is not None:
        # what the controller needs to merge: the order of every case, and the cases this worker
        # collected but another ran (or nobody did, when the run stopped)
        document["run"]["worker"] = harness.worker
        document["collected"] = [_unassigned(item) for item in harness.planned]
    elif (harness.report_dir / "workers").is_dir() and not harness.results:
        from harness.report.merge import merge_workers

        document, trace = merge_workers(document, harness.report_dir, harness.trace)
        harness.merged_summary = document["run"]["summary"]
    conformance.write(harness.report_dir / "conformance.json", document)
    if harness.worker is not None:
        return  # report.html, junit.xml and Allure come from the controller
    _allure_environment(session.config, harness, document)
    from harness.report.html import render

    (harness.report_dir / "conformance.html").write_text(render(document, trace, harness.report_dir),
                                                          encoding="utf-8")


def _unassigned(item: pytest.Item) -> dict[str, Any]:
    """A collected case as a worker hands it to the controller: its record with verdict ``notrun``
    (the controller keeps it only if no worker ran the case)."""
    parameters = {k: _plain(v) for k, v in getattr(getattr(item, "callspec", None), "params", {}).items()}
    return CaseResult(case=item.stash[_CASE], nodeid=item.nodeid, parameters=parameters, verdict="notrun",
                      message="not run").to_json()


def _why_stopped(harness: HarnessSession, session: pytest.Session, exitstatus: int) -> None:
    if harness.stop_reason is not None:
        return
    if session.shouldfail:
        failed = session.testsfailed
        harness.stop(f"stopped after {failed} failed case{'s' if failed != 1 else ''} (-x / --maxfail)")
    elif session.shouldstop:
        harness.stop(f"stopped early: {session.shouldstop}")
    elif harness.collection_errors:
        harness.stop(f"nothing ran: {len(harness.collection_errors)} test module(s) could not be collected "
                     f"({', '.join(harness.collection_errors)}; the terminal output says why)")
    elif exitstatus == pytest.ExitCode.INTERRUPTED:
        harness.stop("interrupted (Ctrl-C or SIGTERM)")


def _not_run(harness: HarnessSession) -> None:
    """Every planned case without a verdict is ``notrun``, with the reason the run stopped; the one
    that was running when it stopped says so."""
    for item in harness.planned:
        if item.nodeid in harness.results:
            continue
        start = item.stash.get(_START, None)
        if harness.worker is not None and start is None:
            continue  # another worker's case: the controller knows what became of it
        reason = harness.stop_reason or "the run ended before it"
        message = f"not run: {'it was running when the run stopped: ' if start else ''}{reason}"
        _record_verdict(harness, item, item.stash[_CASE], "notrun", message, start, timed=False)


def _ev_under_test(harness: HarnessSession) -> dict[str, Any] | None:
    """The EV of the rig, as the EV-side cases (suite dut: ev) test it; the harness's own emulator
    on emulated rigs, which those reports must not pass off as a product."""
    config = harness.rig_config.ev
    if config.kind == "none":
        return None
    if config.kind == "lab":  # a black box: what the harness's SECC saw of it
        seen = ev_identity(harness.trace.select(layer=Layer.V2G, observer="evse")) or {}
        return {"kind": "lab", **({"vin": config.vin} if config.vin else {}), **seen,
                **({} if seen else {"seen": "the EV under test never reached the harness's SECC"})}
    from harness.emulators.profiles import DEFAULT_EV_PROFILE, ProfileError, load_ev_profile

    try:
        profile = load_ev_profile(config.profile or DEFAULT_EV_PROFILE)
    except ProfileError:
        return {"kind": config.kind}
    described = {"kind": config.kind, "profile": profile.name, "evccid": profile.evccid, "vin": profile.vin,
                 "protocols": list(profile.protocols)}
    if config.kind == "emulated":
        described["note"] = ("the harness's own EV emulator: verdicts of EV-side cases check the harness, "
                             "not a vehicle")
    return described


def _dut(harness: HarnessSession) -> dict[str, Any] | None:
    """The DUT as the run saw it: its BootNotification, and how the rig file connects it."""
    rig = harness.rig_config
    from harness.rig.csms import dut_identity

    if "evse" not in rig.under_test:  # the charger is the harness's own: the EV is under test
        return None
    identity = dut_identity(harness.trace, rig.evse.station_id)
    iso15118 = iso15118_identity(harness.trace.select(layer=Layer.V2G, observer="ev"))
    if identity is None and iso15118 is None:
        return None
    return {**(identity or {"station_id": rig.evse.station_id}), "ocpp_version": rig.evse.ocpp.version.value,
            "security_profile": rig.evse.ocpp.security_profile, "kind": rig.evse.kind,
            **({"iso15118": iso15118} if iso15118 else {})}


def _environment_table(config: pytest.Config, harness: HarnessSession, dut: dict[str, Any] | None) -> None:
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:  # pragma: no cover - pytest-html always brings pytest-metadata
        return
    metadata = config.stash.get(metadata_key, None)
    if metadata is None:
        return
    rig = harness.rig_config
    metadata["Run"] = harness.run_id
    metadata["Rig"] = f"{rig.name} ({rig.kind}) from {shown_path(rig.path) if rig.path else '(built in)'}"
    ev = _ev_under_test(harness) if "evse" not in rig.under_test else None
    if ev is not None:
        metadata["DUT"] = "the EV: " + ", ".join(f"{k}: {'; '.join(v) if isinstance(v, list) else v}"
                                                 for k, v in ev.items() if k != "kind")
    else:
        metadata["DUT"] = (", ".join(f"{k}: {v}" for k, v in dut.items()) if dut
                           else f"{rig.evse.station_id}: no BootNotification seen")
    metadata["Conformance report"] = "conformance.html"
    if harness.stop_reason is not None:
        metadata["INCOMPLETE RUN"] = f"{harness.stop_reason}; the cases not run are listed in conformance.html"


def pytest_unconfigure(config: pytest.Config) -> None:
    harness = _session(config)
    if harness is not None:
        harness.trace.close()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    harness = _session(config)
    if harness is None:
        return
    counts: dict[str, int] = {}
    for result in harness.results.values():
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    if not counts and harness.merged_summary is not None:
        counts = {verdict: n for verdict, n in harness.merged_summary.items() if n}
    summary = ", ".join(f"{n} {conformance.VERDICT_LABELS.get(v, v)}" for v, n in sorted(counts.items())) \
        or "no conformance cases ran"
    if harness.stop_reason is not None:
        for problem in harness.rig_problems:
            terminalreporter.write_line(f"rig problem: {problem}", red=True)
        terminalreporter.write_sep("=", f"conformance: {summary} -- INCOMPLETE: {harness.stop_reason}", red=True)
    else:
        terminalreporter.write_sep("=", f"conformance: {summary}")
    terminalreporter.write_line(f"reports: {harness.report_dir}{os.sep}")
