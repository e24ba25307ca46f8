"""Power over time as a PNG, with the charging limits and setpoints that were in force and what the
grid requested.

Read from the timeline only, so a plot can be drawn again from a report folder's trace.jsonl:
the analyzer's samples (``meter``), the power the charger reported (OCPP Power.Active.Import as
the CSMS received it), the limits the CSMS set (SetChargingProfile, each period at its time, in W
with the nominal voltage and phases when given in A; OCPP 2.1 setpoints and discharge limits too,
and the Dynamic updates, pushed or pulled), the power
a grid event requested (the CSMS's decisions, for the profile's duration) and the current the EVSE
offered on the pilot (PWM duty changes, also in W), and when the charger lost and regained the
CSMS. Export is negative. matplotlib draws with its Agg backend: no display needed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from harness.iec61851.pilot import DIGITAL_COMMUNICATION
from harness.trace import Layer, Recorder

#: the measurands of power the charger reports, with their sign here (export is negative)
OCPP_POWER = {"Power.Active.Import": 1.0, "Power.Active.Export": -1.0}


def _profile_steps(payload: dict, sent_wall: float) -> tuple[list[tuple[float, dict[str, float]]], str]:
    """The periods of a profile as (seconds after it was sent, limit/setpoint/dischargeLimit
    given), and the unit. An Absolute schedule's periods count from its startSchedule; the others'
    from the moment the profile was sent (a Relative one really counts from the transaction's
    start, which the plot does not know)."""
    if "scheduleUpdate" in payload:  # 2.1 UpdateDynamicSchedule: the Dynamic profile's new values, in W
        values = {k: float(v) for k, v in payload["scheduleUpdate"].items() if k in ("limit", "setpoint",
                                                                                   "dischargeLimit")}
        return ([(0.0, values)] if values else []), "W"
    profile = payload.get("chargingProfile") or payload.get("csChargingProfiles") or {}
    schedules = profile.get("chargingSchedule")
    schedule = schedules[0] if isinstance(schedules, list) and schedules else schedules
    if not isinstance(schedule, dict) or not schedule.get("chargingSchedulePeriod"):
        return [], "A"
    base = 0.0
    try:
        start = _dt.datetime.fromisoformat(str(schedule["startSchedule"]).replace("Z", "+00:00"))
        base = start.timestamp() - sent_wall
    except (KeyError, TypeError, ValueError):
        pass
    steps = []
    for period in schedule["chargingSchedulePeriod"]:
        values = {}
        for key in ("limit", "setpoint", "dischargeLimit"):
            try:
                values[key] = float(period[key])
            except (KeyError, TypeError, ValueError):
                continue
        try:
            steps.append((base + float(period.get("startPeriod", 0)), values))
        except (TypeError, ValueError):
            continue
    return steps, schedule.get("chargingRateUnit", "A")


def limit_marks(trace: Recorder, *, since: float, until: float | None, keys: dict | None,
                watts_per_amp: float) -> dict[str, list[tuple[float, float]]]:
    """Where each limit, setpoint and discharge limit the CSMS set begins (seconds since ``since``)
    and its value in kW: the profile in force when the plot begins, those sent during it (each
    period at its time), and the 2.1 Dynamic updates."""
    t0 = since
    marks: dict[str, list[tuple[float, float]]] = {"limit": [], "setpoint": [], "dischargeLimit": []}
    sent = [e for e in trace.select(layer=Layer.OCPP, observer="csms", until=until, keys=keys,
                                    name="SetChargingProfile")
            if isinstance(e.payload, dict) and e.payload.get("type") == "CALL"]
    # the profile set last before the measurement began, unless one was cleared since
    cleared = [e.mono for e in trace.select(layer=Layer.OCPP, observer="csms", until=since, keys=keys,
                                            name="ClearChargingProfile")]
    before = [e for e in sent if e.mono < since and not any(c > e.mono for c in cleared)][-1:]
    # 2.1 Dynamic updates: pushed (UpdateDynamicSchedule), or pulled (the CSMS's answers)
    updates = [e for e in trace.select(layer=Layer.OCPP, observer="csms", since=since, until=until, keys=keys,
                                       name=("UpdateDynamicSchedule", "PullDynamicScheduleUpdate"))
               if isinstance(e.payload, dict) and e.payload.get("type") == ("CALL" if e.name == "UpdateDynamicSchedule"
                                                                             else "CALLRESULT")]
    for event in sorted(before + [e for e in sent if e.mono >= since] + updates, key=lambda e: e.mono):
        steps, unit = _profile_steps(event.payload.get("payload") or {}, event.wall)
        scale = (watts_per_amp if unit == "A" else 1.0) / 1000
        at = max(event.mono, since) - t0
        for key in marks:  # what a profile sent earlier said for later is replaced by this one
            marks[key] = [point for point in marks[key] if point[0] < at]
        for offset, values in steps:
            x = max(event.mono + offset, since) - t0
            for key, value in values.items():
                if marks[key] and marks[key][-1][0] == x:
                    marks[key].pop()  # a period that began before the plot: the latest one holds
                if marks[key] and marks[key][-1][1] == value * scale:
                    continue  # the same value again (a pulled update that changed nothing)
                marks[key].append((x, value * scale))
    return marks


def power_plot(trace: Recorder, path: Path, *, since: float, until: float | None = None, title: str = "",
               voltage: float = 230.0, phases: int = 3, station_id: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    watts_per_amp = voltage * max(1, phases)
    samples = trace.select(layer=Layer.METER, name="MeterSample", since=since, until=until)
    t0 = since
    figure = Figure(figsize=(9, 4.2), dpi=100)
    axes = figure.add_subplot(111)
    if samples:
        axes.step([e.mono - t0 for e in samples], [e.payload["power_w"] / 1000 for e in samples], where="post",
                  label="analyzer P", color="#1f5fa8", linewidth=1.6)
    keys = {"station_id": station_id} if station_id else None
    reported = []
    for event in trace.select(layer=Layer.OCPP, observer="csms", since=since, until=until, keys=keys,
                              name=("TransactionEvent", "MeterValues", "StopTransaction")):
        body = event.payload
        if not isinstance(body, dict) or body.get("type") != "CALL":
            continue
        payload = body.get("payload") or {}
        for meter_value in payload.get("meterValue", []) or payload.get("transactionData", []):
            net = None  # import less export, in kW
            for sampled in meter_value.get("sampledValue", []):
                sign = OCPP_POWER.get(sampled.get("measurand"))
                if sign is not None:
                    try:
                        net = (net or 0.0) + float(sampled["value"]) * sign / 1000
                    except (TypeError, ValueError):
                        continue
            if net is not None:
                reported.append((event.mono - t0, net))
    if reported:
        axes.plot(*zip(*reported), "o", color="#d9822b", markersize=4, label="charger P (OCPP)")
    marks = limit_marks(trace, since=since, until=until, keys=keys, watts_per_amp=watts_per_amp)
    end = (until if until is not None else (samples[-1].mono if samples else since)) - t0
    styles = {"limit": ("#b42318", "--", "charging limit (OCPP)"),
              "setpoint": ("#067647", "-", "setpoint (OCPP)"),
              "dischargeLimit": ("#b54708", "--", "discharge limit (OCPP)")}
    annotations: dict[tuple[float, float], list[str]] = {}  # one per point, naming every value there
    for key, points in marks.items():
        points = [point for point in points if point[0] <= end]  # periods after the plot's end
        colour, style, label = styles[key]
        for index, (x, kw) in enumerate(points):
            x_end = points[index + 1][0] if index + 1 < len(points) else max(end, x)
            axes.axvline(x, color=colour, linestyle=":", linewidth=1)
            annotations.setdefault((x, kw), []).append(key)
            axes.hlines(kw, x, x_end, color=colour, linestyle=style, linewidth=1, label=label)
    for (x, kw), keys_here in annotations.items():
        axes.annotate(f"{' = '.join(keys_here)} {kw:.1f} kW", (x, kw), textcoords="offset points", xytext=(4, 4),
                      fontsize=8, color=styles[keys_here[0]][0])
    decisions = trace.select(layer=Layer.OCPP, observer="csms", name="CsmsDecision", since=since, until=until)
    for index, event in enumerate(decisions):
        decision = event.payload if isinstance(event.payload, dict) else {}
        requested = decision.get("requested_w")
        profile = decision.get("profile") or {}
        schedules = profile.get("chargingSchedule") or [{}]
        duration = float(schedules[0].get("duration") or 0.0)
        if requested is None:
            continue
        x = event.mono - t0
        x_end = min(max(end, x), x + duration) if duration else max(end, x)
        if index + 1 < len(decisions):  # the grid's next request replaces this one
            x_end = min(x_end, decisions[index + 1].mono - t0)
        axes.hlines(requested / 1000, x, x_end, color="#101828", linewidth=2.4, alpha=0.35,
                    label="requested by the grid")
    for event in trace.select(layer=Layer.OCPP, observer="csms", name=("Disconnected", "Connected"), since=since,
                              until=until, keys=keys):
        lost = event.name == "Disconnected"
        axes.axvline(event.mono - t0, color="#667085", linestyle="-." if lost else ":", linewidth=1.2,
                     label="charger lost the CSMS" if lost else "charger back online")
    changes = trace.select(layer=Layer.PILOT, name="PwmDuty", since=since, until=until)
    duty = [(e.mono - t0, e.payload.get("amps", 0.0) * watts_per_amp / 1000) for e in changes]
    if duty and not any(e.payload.get("to") == DIGITAL_COMMUNICATION for e in changes):
        # (at 5 % ISO 15118 decides the power, not the duty: no line then)
        xs, ys = zip(*(duty + [(max(end, duty[-1][0]), duty[-1][1])]))
        axes.step(xs, ys, where="post", color="#6a3d9a", linestyle="-.", linewidth=1, label="offered on pilot (PWM)")
    axes.set_xlabel("time since the measurement started (s)")
    axes.set_ylabel("active power (kW)")
    axes.set_title(title or "power at the EV connector", fontsize=10)
    axes.grid(True, alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        axes.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
