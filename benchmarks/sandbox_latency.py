"""Latency of one sandboxed tool call: warm pool vs a fresh process per call vs an
emulated tool call through the embedded model.

    .venv/bin/python benchmarks/sandbox_latency.py [--calls 200] [--fresh-calls 30] [--llm-calls 5] [--no-llm]

Every row runs the same tool (a stdlib function with embedded mock data, the shape that
environment synthesis produces) through ``astra.sandbox.call_function``. Latency is measured
end to end in the caller (submit → JSON result back). Rows:

* warm pool, idle:       one call at a time, the pool refilled between calls (best case)
* warm pool, sustained:  calls back to back (the pool refills in the background meanwhile)
* warm pool, 2 threads:  two callers back to back (this machine has 2 cores)
* fresh process:         a new isolated interpreter per call (``fresh=True``)
* embedded model:        the tool result is *emulated* by the embedded LLM (max_tokens=48)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time

from astra.sandbox import SandboxPool, call_function

TOOL = '''
import datetime

_FORECASTS = {
    ("oslo", "2025-03-02"): {"temp_c": -3.5, "condition": "snow", "wind_kmh": 14},
    ("paris", "2025-03-02"): {"temp_c": 9.0, "condition": "cloudy", "wind_kmh": 9},
}

def get_weather(city: str, date: str) -> dict:
    """Weather forecast for a city on a date (YYYY-MM-DD)."""
    datetime.date.fromisoformat(date)
    key = (city.strip().lower(), date)
    if key not in _FORECASTS:
        raise ValueError(f"no forecast for {city} on {date}")
    return {"city": city, "date": date, **_FORECASTS[key]}
'''
KWARGS = {"city": "Oslo", "date": "2025-03-02"}


def stats(lat: list[float], wall: float) -> tuple[float, float, float]:
    lat = sorted(lat)
    p90 = lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))]
    return statistics.median(lat) * 1000, p90 * 1000, len(lat) / wall


def timed_call(pool: SandboxPool | None, fresh: bool = False) -> float:
    t0 = time.perf_counter()
    r = call_function(TOOL, "get_weather", KWARGS, pool=pool, fresh=fresh)
    dt = time.perf_counter() - t0
    assert r.ok and r.value["condition"] == "snow", r
    return dt


def bench_pool_idle(pool: SandboxPool, n: int) -> tuple[list[float], float]:
    lat, busy = [], 0.0
    for _ in range(n):
        pool.warm(10)
        time.sleep(0.02)  # idle: e.g. the agent's model is generating between tool calls
        dt = timed_call(pool)
        lat.append(dt)
        busy += dt
    return lat, busy


def bench_pool_sustained(pool: SandboxPool, n: int) -> tuple[list[float], float]:
    pool.warm(10)
    t0 = time.perf_counter()
    lat = [timed_call(pool) for _ in range(n)]
    return lat, time.perf_counter() - t0


def bench_pool_threads(pool: SandboxPool, n: int, threads: int) -> tuple[list[float], float]:
    pool.warm(10)
    lat: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine = [timed_call(pool) for _ in range(k)]
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, time.perf_counter() - t0


def bench_fresh(n: int) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    lat = [timed_call(None, fresh=True) for _ in range(n)]
    return lat, time.perf_counter() - t0


def bench_llm(n: int) -> tuple[list[float], float] | str:
    try:
        import asyncio

        from astra.llm import make_client
    except Exception as e:  # pragma: no cover - optional
        return f"astra.llm not importable ({type(e).__name__})"
    try:
        client = make_client("embedded", cache=False)
    except Exception as e:
        return f"embedded model unavailable ({type(e).__name__}: {e})"
    messages = [
        {"role": "system", "content": "You emulate a tool. Reply with only the JSON result of the call."},
        {"role": "user", "content": "Tool: get_weather(city: str, date: str) -> weather forecast.\n"
                                    "Call: get_weather(city=\"Oslo\", date=\"2025-03-02\")\nJSON result:"},
    ]

    async def run() -> list[float]:
        out = []
        await client.chat(messages, max_tokens=48)  # warm-up: load the model
        for _ in range(n):
            t0 = time.perf_counter()
            await client.chat(messages, max_tokens=48, temperature=0.0)
            out.append(time.perf_counter() - t0)
        return out

    try:
        t0 = time.perf_counter()
        lat = asyncio.run(run())
        return lat, sum(lat) if lat else (time.perf_counter() - t0)
    except Exception as e:
        return f"embedded model failed ({type(e).__name__}: {e})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--idle-calls", type=int, default=50)
    ap.add_argument("--fresh-calls", type=int, default=30)
    ap.add_argument("--llm-calls", type=int, default=5)
    ap.add_argument("--no-llm", action="store_true")
    args = ap.parse_args()

    rows: list[tuple[str, int, object]] = []
    with SandboxPool(size=2) as pool:
        iso = pool.run_code("pass").isolation
        timed_call(pool)  # warm-up
        rows.append(("warm pool, idle (1 caller)", args.idle_calls, bench_pool_idle(pool, args.idle_calls)))
        rows.append(("warm pool, sustained (1 caller)", args.calls, bench_pool_sustained(pool, args.calls)))
        rows.append(("warm pool, 2 threads", args.calls, bench_pool_threads(pool, args.calls, 2)))
    rows.append(("fresh process per call", args.fresh_calls, bench_fresh(args.fresh_calls)))
    if not args.no_llm:
        rows.append(("embedded model, emulated (max_tokens=48)", args.llm_calls, bench_llm(args.llm_calls)))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# sandboxed tool-call latency — {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average at the end {load}")
    layers = [k for k in ("netns", "mountns", "readonly_root", "proc_hidepid", "dropped_privileges",
                          "seccomp", "audit_hook") if getattr(iso, k)]
    print(f"# isolation: mode={iso.mode}, landlock ABI {iso.landlock}, {', '.join(layers)}; "
          f"degraded: {iso.degraded or 'none'}")
    print()
    print(f"| {'path':<42} | {'calls':>5} | {'median ms':>9} | {'p90 ms':>8} | {'calls/s':>8} |")
    print(f"|{'-' * 44}|{'-' * 7}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for name, _n, res in rows:
        if isinstance(res, str):
            print(f"| {name:<42} | {'-':>5} | {'-':>9} | {'-':>8} | {'-':>8} |  {res}")
            continue
        lat, wall = res
        med, p90, rate = stats(lat, wall)
        rate_s = f"{rate:.1f}" if rate >= 10 else f"{rate:.3g}"
        print(f"| {name:<42} | {len(lat):>5} | {med:>9.1f} | {p90:>8.1f} | {rate_s:>8} |")
    print()
    print("calls/s: calls divided by wall time; for 'idle' it is 1 / mean latency (refill time excluded).")


if __name__ == "__main__":
    main()
