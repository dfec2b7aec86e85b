/**
 * The dashboard page's HTML and CSS, served by dashboard.ts as `GET /ui` and `GET /ui/style.css`
 * (its script is ui/app.ts, compiled next to this file). Links are relative to `/ui`, so the
 * page works under an app's basePath. No inline script or style: the CSP forbids both.
 */

/** The page: a skeleton that app.js fills with textContent only. */
export const UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftqueue dashboard</title>
<link rel="stylesheet" href="ui/style.css">
<script type="module" src="ui/app.js"></script>
</head>
<body>
<header>
  <h1>raftqueue</h1>
  <span id="served-by" class="muted"></span>
  <span id="connection" class="badge warn">connecting</span>
  <span id="access" class="badge">checking access</span>
  <form id="token-form" class="inline" hidden>
    <input id="token" type="password" placeholder="admin token" autocomplete="off" aria-label="admin token">
    <button type="submit">Use token</button>
  </form>
</header>
<main>
  <section id="cluster">
    <h2>Cluster</h2>
    <p class="leader-line">Leader: <strong id="leader">unknown</strong> <span class="muted">term <span id="term">0</span> · elections seen <span id="elections">-</span> · leader changes seen <span id="leader-changes-count">-</span></span></p>
    <table id="members">
      <thead><tr><th>member</th><th>address</th><th>vote</th><th>role</th><th>reachable</th><th>match</th><th>lag</th><th>repair</th></tr></thead>
      <tbody></tbody>
    </table>
    <p class="muted small">match and lag: known when the leader serves this page · repair: this member's log needs repair from the leader (other members' is not reported here)</p>
    <h3>Recent leader changes</h3>
    <ol id="leader-changes" class="compact"></ol>
    <div id="actions-members" class="actions" hidden></div>
  </section>
  <section id="charts">
    <h2>Last minutes</h2>
    <figure><figcaption>publish <span class="key publish"></span> and consume <span class="key consume"></span> per second (all topics)</figcaption><svg id="chart-rates" viewBox="0 0 600 150" role="img" aria-label="publish and consume rates"></svg></figure>
    <figure><figcaption>commit latency: proposal to applied on this member, mean ms <span class="key latency"></span></figcaption><svg id="chart-latency" viewBox="0 0 600 150" role="img" aria-label="commit latency"></svg></figure>
  </section>
  <section id="topics">
    <h2>Topics</h2>
    <table id="topics-table">
      <thead><tr><th>topic / group</th><th>depth</th><th>messages</th><th>bytes</th><th>publish/s</th><th>consume/s</th><th>in flight</th><th>redeliveries</th><th>oldest waiting</th><th>dead letters</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="no-topics" class="muted" hidden>No topics.</p>
    <div id="actions-topics" class="actions" hidden></div>
  </section>
  <p id="result" role="status" class="result"></p>
  <datalist id="choices-topics"></datalist>
  <datalist id="choices-members"></datalist>
</main>
</body>
</html>
`;

/** The page's style. */
export const UI_CSS = `:root { color-scheme: light; --fg: #1d232b; --muted: #66707c; --line: #d9dee4; --bg: #f6f8fa; --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --publish: #0969da; --consume: #8250df; --latency: #bc4c00; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 20px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; padding: 16px 20px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
#topics { grid-column: 1 / -1; }
.result { grid-column: 1 / -1; margin: 0; min-height: 1.4em; white-space: pre-wrap; overflow-wrap: anywhere; }
.result.bad { color: var(--bad); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td:first-child, #members td:nth-child(2), #members td:nth-child(5), #topics-table td:last-child { white-space: normal; overflow-wrap: anywhere; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
tr.group td:first-child { padding-left: 22px; color: var(--muted); }
.muted { color: var(--muted); }
.small { font-size: 12px; margin: 6px 0 0; }
.badge { padding: 2px 8px; border-radius: 10px; font-size: 12px; background: #eaeef2; }
.badge.ok { background: #dafbe1; color: var(--ok); }
.badge.bad { background: #ffebe9; color: var(--bad); }
.badge.warn { background: #fff8c5; color: var(--warn); }
.yes { color: var(--ok); }
.no { color: var(--bad); }
.leader-mark { color: var(--warn); font-weight: 700; }
ol.compact { margin: 0; padding-left: 20px; max-height: 120px; overflow: auto; font-size: 12px; }
figure { margin: 0 0 10px; }
figcaption { font-size: 12px; color: var(--muted); }
svg { width: 100%; height: 150px; background: var(--bg); border-radius: 4px; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { fill: var(--muted); font-size: 10px; }
svg polyline { fill: none; stroke-width: 2; }
svg .publish, .key.publish { stroke: var(--publish); background: var(--publish); }
svg .consume, .key.consume { stroke: var(--consume); background: var(--consume); }
svg .latency, .key.latency { stroke: var(--latency); background: var(--latency); }
.key { display: inline-block; width: 12px; height: 3px; vertical-align: middle; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 10px; }
.actions form { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; padding: 6px 8px; border: 1px solid var(--line); border-radius: 4px; }
.actions form strong { font-size: 12px; margin-right: 4px; }
input { font: inherit; padding: 2px 6px; border: 1px solid var(--line); border-radius: 4px; min-width: 8em; }
button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 4px; background: #f3f4f6; cursor: pointer; }
button.danger { color: var(--bad); }
form.inline { display: inline-flex; gap: 4px; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
`;
