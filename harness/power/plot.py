"""Power over time as a PNG, with the charging limits and setpoints that were in force.

Read from the timeline only, so a plot can be drawn again from a report folder's trace.jsonl:
the analyzer's samples (``meter``), the power the charger reported (OCPP Power.Active.Import as
the CSMS received it), the limits the CSMS set (SetChargingProfile, converted to W with the
nominal voltage and phases when given in A) and the current the EVSE offered on the pilot (PWM duty
changes, also in W). matplotlib draws with its Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path

from harness.trace import Layer, Recorder

OCPP_POWER = "Power.Active.Import"


def _profile_limit(payload: dict) -> tuple[float, str] | None:
    profile = payload.get("chargingProfile") or payload.get("csChargingProfiles") or {}
    schedules = profile.get("chargingSchedule")
    schedule = schedules[0] if isinstance(schedules, list) and schedules else schedules
    if not isinstance(schedule, dict) or not schedule.get("chargingSchedulePeriod"):
        return None
    return float(schedule["chargingSchedulePeriod"][0]["limit"]), schedule.get("chargingRateUnit", "A")


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
            for sampled in meter_value.get("sampledValue", []):
                if sampled.get("measurand") == OCPP_POWER:
                    try:
                        reported.append((event.mono - t0, float(sampled["value"]) / 1000))
                    except (TypeError, ValueError):
                        pass
    if reported:
        axes.plot(*zip(*reported), "o", color="#d9822b", markersize=4, label="charger P (OCPP)")
    limits = []
    for event in trace.select(layer=Layer.OCPP, observer="csms", since=since, until=until, keys=keys,
                              name="SetChargingProfile"):
        body = event.payload
        if isinstance(body, dict) and body.get("type") == "CALL":
            limit = _profile_limit(body.get("payload") or {})
            if limit is not None:
                value, unit = limit
                limits.append((event.mono - t0, value * (watts_per_amp if unit == "A" else 1.0) / 1000))
    end = (until if until is not None else (samples[-1].mono if samples else since)) - t0
    for index, (x, kw) in enumerate(limits):
        x_end = limits[index + 1][0] if index + 1 < len(limits) else max(end, x)
        axes.axvline(x, color="#b42318", linestyle=":", linewidth=1)
        axes.annotate(f"limit {kw:.1f} kW", (x, kw), textcoords="offset points", xytext=(4, 4), fontsize=8,
                      color="#b42318")
        axes.hlines(kw, x, x_end, color="#b42318", linestyle="--", linewidth=1, label="charging limit (OCPP)")
    duty = [(e.mono - t0, e.payload.get("amps", 0.0) * watts_per_amp / 1000)
            for e in trace.select(layer=Layer.PILOT, name="PwmDuty", since=since, until=until)]
    if duty:
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
