"""A preview of deploy/grafana/dashboards/taskrelay.json without Grafana: each panel's PromQL,
as written in the dashboard, evaluated by a real Prometheus (query_range) and drawn as SVG in
one HTML page, which headless Chromium turns into docs/dashboard.png:

    python deploy/grafana/render_preview.py http://127.0.0.1:9090 /tmp/dashboard.html 300 [END]
    chromium --headless --hide-scrollbars --window-size=1210,1880 \\
        --screenshot=docs/dashboard.png file:///tmp/dashboard.html

Grafana's server is not packaged by Debian, PyPI or npm, so this is how the picture in the
docs was made; with Docker, `docker compose up` shows the real dashboard on :3000.
"""

from __future__ import annotations

import html
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).parent / "dashboards" / "taskrelay.json"
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff7383", "#b877d9", "#ff9830", "#8ab8ff"]
STEP = 4
WIDTH, HEIGHT, LEFT = 560, 190, 60
STYLE = """
body{background:#111217;color:#ccccdc;font-family:Helvetica,Arial,sans-serif;margin:12px}
h1{font-size:18px;font-weight:500;margin:4px 4px 12px}
.grid{display:grid;grid-template-columns:repeat(2,580px);gap:10px}
.panel{background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:8px 10px}
.title{font-size:13px;font-weight:500;margin-bottom:4px}.legend{font-size:11px;margin-top:2px}
.note{font-size:11px;color:#8e8e8e;margin:8px 4px}
"""

Series = tuple[str, list[tuple[float, float]]]


def query(prometheus: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    expr = expr.replace("$__rate_interval", "20s").replace("$__range", "5m")
    params = {"query": expr, "start": start, "end": end, "step": STEP}
    url = f"{prometheus}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=20) as answer:
        result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def figure(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def panel_series(prometheus: str, panel: dict[str, Any], start: float, end: float) -> list[Series]:
    series = []
    for target in panel["targets"]:
        for result in query(prometheus, target["expr"], start, end):
            points = [
                (float(x), float(y))
                for x, y in result["values"]
                if y not in ("NaN", "+Inf", "-Inf")
            ]
            if points:
                series.append((legend(target["legendFormat"], result["metric"]), points))
    return series


def svg(series: list[Series], unit: str, start: float, end: float) -> str:
    top = max([y for _, points in series for _, y in points] + [1e-9]) * 1.15
    plot_height = HEIGHT - 30
    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}">']
    for i in range(5):
        y = HEIGHT - 20 - i * plot_height / 4
        label = html.escape(figure(top * i / 4, unit))
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH}" y1="{y}" y2="{y}" stroke="#2c3235"/>')
        parts.append(
            f'<text x="{LEFT - 5}" y="{y + 4}" fill="#8e8e8e" font-size="10" '
            f'text-anchor="end">{label}</text>'
        )
    for n, (_, points) in enumerate(series):
        path = " ".join(
            f"{LEFT + (x - start) / (end - start) * (WIDTH - LEFT - 5):.1f},"
            f"{HEIGHT - 20 - y / top * plot_height:.1f}"
            for x, y in points
        )
        color = COLORS[n % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
    for x, anchor, moment in ((LEFT, "start", start), (WIDTH, "end", end)):
        clock = time.strftime("%H:%M:%S", time.gmtime(moment))
        parts.append(
            f'<text x="{x}" y="{HEIGHT - 4}" fill="#8e8e8e" font-size="10" '
            f'text-anchor="{anchor}">{clock} UTC</text>'
        )
    return "".join([*parts, "</svg>"])


def panel_html(prometheus: str, panel: dict[str, Any], start: float, end: float) -> str:
    unit = panel["fieldConfig"]["defaults"]["unit"]
    series = panel_series(prometheus, panel, start, end)
    keys = "".join(
        f'<span style="color:{COLORS[n % len(COLORS)]}">&#9632;</span> {html.escape(name)} '
        f"<b>{html.escape(figure(points[-1][1], unit))}</b>&nbsp;&nbsp; "
        for n, (name, points) in enumerate(series)
    )
    return (
        f'<div class="panel"><div class="title">{html.escape(panel["title"])}</div>'
        f"{svg(series, unit, start, end)}"
        f'<div class="legend">{keys or "<i>no data</i>"}</div></div>'
    )


def main(prometheus: str, out: str, seconds: float, end: float) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    start = end - seconds
    panels = "".join(panel_html(prometheus, p, start, end) for p in dashboard["panels"])
    note = (
        "Each panel's PromQL from the dashboard JSON, evaluated by Prometheus (query_range, "
        f"step {STEP} s, $__rate_interval = 20 s). Rendered without Grafana."
    )
    Path(out).write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><style>{STYLE}</style></head><body>'
        f"<h1>taskrelay dashboard (deploy/grafana/dashboards/taskrelay.json)</h1>"
        f'<div class="grid">{panels}</div><div class="note">{note}</div></body></html>'
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    window = float(arguments[2]) if len(arguments) > 2 else 300.0
    until = float(arguments[3]) if len(arguments) > 3 else time.time()  # epoch seconds
    main(arguments[0], arguments[1], window, until)
