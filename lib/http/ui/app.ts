/// <reference lib="dom" />
/**
 * The dashboard's script (runs in the browser; served as `GET /ui/app.js`). It reads the state
 * from the `ui/events` stream and renders it with DOM calls and textContent only: topic names,
 * member ids, addresses and error messages are user data and are never parsed as HTML. Actions
 * are forms built from the state's `actions` list, sent to `ui/actions/<name>` as JSON with the
 * admin token when one is given; without the right to act the page shows none of them.
 */

interface Member {
  readonly id: string;
  readonly address: string | null;
  readonly role: string;
  readonly isLeader: boolean;
  readonly self: boolean;
  readonly reachable: boolean | null;
  readonly why: string | null;
  readonly match: number | null;
  readonly lag: number | null;
  readonly needsRepair: boolean | null;
}

interface Group {
  readonly group: string;
  readonly waiting: number;
  readonly inFlight: number;
  readonly redeliveries: number;
  readonly oldestWaitingAgeMs: number | null;
}

interface Topic {
  readonly topic: string;
  readonly depth: number;
  readonly messages: number;
  readonly bytes: number;
  readonly publishRate: number;
  readonly consumeRate: number;
  readonly deadLetterOf: string | null;
  readonly deadLetterTopic: string | null;
  readonly groups: readonly Group[];
}

interface ActionField {
  readonly name: string;
  readonly label: string;
  readonly required: boolean;
  readonly choices?: 'topics' | 'members';
}

interface Action {
  readonly name: string;
  readonly label: string;
  readonly section: 'topics' | 'members';
  readonly fields: readonly ActionField[];
  readonly confirm: boolean;
}

interface Sample {
  readonly atMs: number;
  readonly publishRate: number;
  readonly consumeRate: number;
  readonly commitMs: number | null;
}

interface State {
  readonly kind: 'member' | 'client' | 'starting';
  readonly atMs: number;
  readonly self: { readonly id: string; readonly role: string; readonly term: number; readonly leaderId: string | null; readonly needsRepair: boolean };
  readonly members: readonly Member[];
  readonly topics: readonly Topic[];
  readonly elections: number | null;
  readonly leaderChanges: number | null;
  readonly recentLeaders: readonly { readonly atMs: number; readonly leaderId: string | null; readonly term: number }[];
  readonly history: readonly Sample[];
  readonly actions: readonly Action[];
}

const TOKEN_KEY = 'raftqueue-admin-token';

let admin = false;
let actionsKey = '';

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

/** An element with text (never HTML) and optional class. */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string | number | null, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className !== undefined) e.className = className;
  return e;
}

function row(cells: readonly (HTMLElement | string | number | null)[], className?: string): HTMLTableRowElement {
  const tr = el('tr', null, className);
  for (const c of cells) {
    const td = el('td');
    if (c instanceof HTMLElement) td.append(c);
    else td.textContent = c === null ? '-' : String(c);
    tr.append(td);
  }
  return tr;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

function age(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

function clock(atMs: number): string {
  return new Date(atMs).toLocaleTimeString();
}

function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders(): Record<string, string> {
  const t = token();
  return t === null ? {} : { Authorization: `Bearer ${t}` };
}

// ---- rendering -----------------------------------------------------------------------------

function render(state: State): void {
  const s = state.self;
  byId('served-by').textContent = state.kind === 'client' ? `served by a client of ${s.id || '?'}` : `served by ${s.id || '(starting)'} (${s.role})`;
  byId('leader').textContent = s.leaderId ?? 'none';
  byId('term').textContent = String(s.term);
  byId('elections').textContent = state.elections === null ? '-' : String(state.elections);
  byId('leader-changes-count').textContent = state.leaderChanges === null ? '-' : String(state.leaderChanges);
  renderMembers(state.members);
  renderLeaderChanges(state);
  renderTopics(state.topics);
  renderChart(byId('chart-rates'), state.history, [
    { key: 'publishRate', className: 'publish' },
    { key: 'consumeRate', className: 'consume' },
  ]);
  renderChart(byId('chart-latency'), state.history, [{ key: 'commitMs', className: 'latency' }]);
  fillChoices('choices-topics', state.topics.map((t) => t.topic));
  fillChoices('choices-members', state.members.map((m) => m.id));
  renderActions(state.actions);
}

function renderMembers(members: readonly Member[]): void {
  const body = byId('members').querySelector('tbody') as HTMLTableSectionElement;
  body.replaceChildren(
    ...members.map((m) => {
      const name = el('span', m.self ? `${m.id} (this member)` : m.id);
      const raftRole = el('span', m.isLeader ? 'leader' : m.role === 'learner' ? 'learner' : 'follower', m.isLeader ? 'leader-mark' : undefined);
      const reach = el('span', m.reachable === null ? 'unknown' : m.reachable ? 'yes' : 'no', m.reachable === null ? 'muted' : m.reachable ? 'yes' : 'no');
      if (m.why !== null) {
        reach.textContent = `${reach.textContent ?? ''} (${m.why})`;
        reach.title = m.why;
      }
      const tr = row([name, m.address, m.role, raftRole, reach, m.match, m.lag, m.needsRepair === null ? null : m.needsRepair ? 'yes' : 'no']);
      tr.dataset['member'] = m.id;
      if (m.isLeader) tr.dataset['leader'] = 'true';
      return tr;
    }),
  );
}

function renderLeaderChanges(state: State): void {
  byId('leader-changes').replaceChildren(
    ...state.recentLeaders.map((c) => el('li', `${clock(c.atMs)}: ${c.leaderId === null ? 'no leader' : `${c.leaderId} leads`} (term ${c.term})`)),
  );
}

function renderTopics(topics: readonly Topic[]): void {
  const body = byId('topics-table').querySelector('tbody') as HTMLTableSectionElement;
  const rows: HTMLTableRowElement[] = [];
  for (const t of topics) {
    const dlq = t.deadLetterOf !== null ? `dead letters of ${t.deadLetterOf}` : t.deadLetterTopic !== null ? t.deadLetterTopic : null;
    const tr = row([el('strong', t.topic), t.depth, t.messages, bytes(t.bytes), t.publishRate, t.consumeRate, null, null, null, dlq]);
    tr.dataset['topic'] = t.topic;
    (tr.children[1] as HTMLElement).className = 'depth';
    rows.push(tr);
    for (const g of t.groups) {
      const gr = row([`group ${g.group}`, g.waiting, null, null, null, null, g.inFlight, g.redeliveries, age(g.oldestWaitingAgeMs), null], 'group');
      gr.dataset['topic'] = t.topic;
      gr.dataset['group'] = g.group;
      rows.push(gr);
    }
  }
  body.replaceChildren(...rows);
  byId('no-topics').hidden = topics.length > 0;
}

type SeriesKey = 'publishRate' | 'consumeRate' | 'commitMs';

/** A line chart of the history in an SVG (viewBox 600 x 150), drawn with attributes only. */
function renderChart(svg: HTMLElement, history: readonly Sample[], series: readonly { key: SeriesKey; className: string }[]): void {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 600;
  const H = 150;
  const PAD = 18;
  const parts: SVGElement[] = [];
  let max = 0;
  for (const s of history) for (const { key } of series) max = Math.max(max, s[key] ?? 0);
  const top = max <= 0 ? 1 : niceCeil(max);
  for (const f of [0, 0.5, 1]) {
    const y = H - PAD - f * (H - 2 * PAD);
    const line = document.createElementNS(NS, 'line');
    line.setAttribute('x1', '36');
    line.setAttribute('x2', String(W));
    line.setAttribute('y1', String(y));
    line.setAttribute('y2', String(y));
    line.setAttribute('class', 'grid');
    const label = document.createElementNS(NS, 'text');
    label.setAttribute('x', '2');
    label.setAttribute('y', String(y + 3));
    label.setAttribute('class', 'axis');
    label.textContent = formatAxis(top * f);
    parts.push(line, label);
  }
  const first = history[0];
  const last = history[history.length - 1];
  if (first !== undefined && last !== undefined) {
    const span = Math.max(1, last.atMs - first.atMs);
    for (const { key, className } of series) {
      const points = history
        .filter((s) => s[key] !== null)
        .map((s) => `${(36 + ((s.atMs - first.atMs) / span) * (W - 40)).toFixed(1)},${(H - PAD - ((s[key] ?? 0) / top) * (H - 2 * PAD)).toFixed(1)}`);
      const poly = document.createElementNS(NS, 'polyline');
      poly.setAttribute('points', points.join(' '));
      poly.setAttribute('class', className);
      parts.push(poly);
    }
    const span1 = document.createElementNS(NS, 'text');
    span1.setAttribute('x', String(W - 110));
    span1.setAttribute('y', String(H - 3));
    span1.setAttribute('class', 'axis');
    span1.textContent = `last ${Math.round(span / 1000)} s`;
    parts.push(span1);
  }
  svg.replaceChildren(...parts);
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function formatAxis(v: number): string {
  return v >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
}

function fillChoices(id: string, values: readonly string[]): void {
  byId(id).replaceChildren(
    ...values.map((v) => {
      const o = el('option');
      o.value = v;
      return o;
    }),
  );
}

// ---- actions ----------------------------------------------------------------------------------

/** Builds one form per action the state lists (once per set of actions), when this visitor may act. */
function renderActions(actions: readonly Action[]): void {
  const key = `${admin}|${actions.map((a) => a.name).join(',')}`;
  if (key === actionsKey) return;
  actionsKey = key;
  for (const section of ['topics', 'members'] as const) {
    const box = byId(`actions-${section}`);
    const forms = admin ? actions.filter((a) => a.section === section).map(actionForm) : [];
    box.replaceChildren(...forms);
    box.hidden = forms.length === 0;
  }
}

function actionForm(action: Action): HTMLFormElement {
  const form = el('form');
  form.dataset['action'] = action.name;
  form.append(el('strong', action.label));
  const inputs: HTMLInputElement[] = [];
  for (const f of action.fields) {
    const input = el('input');
    input.name = f.name;
    input.placeholder = f.label;
    input.setAttribute('aria-label', f.label);
    input.required = f.required;
    if (f.choices !== undefined) input.setAttribute('list', `choices-${f.choices}`);
    inputs.push(input);
    form.append(input);
  }
  const button = el('button', action.label.split(' ')[0] ?? 'Go', action.confirm ? 'danger' : undefined);
  button.type = 'submit';
  form.append(button);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body: Record<string, string> = {};
    for (const i of inputs) if (i.value !== '') body[i.name] = i.value;
    if (action.confirm && !window.confirm(`${action.label}: ${JSON.stringify(body)}?`)) return;
    void act(action, body, button);
  });
  return form;
}

async function act(action: Action, body: Record<string, string>, button: HTMLButtonElement): Promise<void> {
  const result = byId('result');
  button.disabled = true;
  result.className = 'result';
  result.textContent = `${action.label}: working...`;
  try {
    const res = await fetch(`ui/actions/${encodeURIComponent(action.name)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...authHeaders() },
      body: JSON.stringify(body),
    });
    const reply = (await res.json()) as Record<string, unknown>;
    if (res.ok && reply['success'] === true) {
      const { success, action: name, ...rest } = reply;
      void success;
      void name;
      const messages = rest['result'] !== undefined && typeof rest['result'] === 'object' && rest['result'] !== null ? (rest['result'] as Record<string, unknown>)['messages'] : rest['messages'];
      if (Array.isArray(messages)) {
        // A peek: one line per message, as text (payloads are user data).
        result.textContent = `${action.label}: ${messages.length} message(s)`;
        for (const m of messages as Record<string, unknown>[]) {
          const line = document.createElement('div');
          line.className = 'peeked';
          const payload = typeof m['message'] === 'string' ? m['message'] : JSON.stringify(m['message']);
          line.textContent = `#${String(m['offset'])} (deliveries ${String(m['deliveryCount'])}${m['key'] !== undefined ? `, key ${String(m['key'])}` : ''}): ${payload}`;
          result.appendChild(line);
        }
      } else {
        result.textContent = `${action.label}: done ${JSON.stringify(rest)}`;
      }
    } else {
      result.className = 'result bad';
      result.textContent = `${action.label} failed (${res.status} ${String(reply['code'] ?? '')}): ${String(reply['error'] ?? 'no reason given')}`;
      if (res.status === 401 || res.status === 403) void checkAccess();
    }
  } catch (error) {
    result.className = 'result bad';
    result.textContent = `${action.label} failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    button.disabled = false;
  }
}

/** Asks the gateway whether this visitor (with the token, if given) may act. */
async function checkAccess(): Promise<void> {
  const badge = byId('access');
  try {
    const res = await fetch('ui/session', { headers: authHeaders(), cache: 'no-store' });
    const s = (await res.json()) as { admin?: boolean; why?: string };
    admin = s.admin === true;
    badge.textContent = admin ? 'admin: actions enabled' : 'read-only';
    badge.className = admin ? 'badge ok' : 'badge';
    badge.title = admin ? '' : (s.why ?? '');
  } catch (error) {
    admin = false;
    badge.textContent = 'read-only';
    badge.title = error instanceof Error ? error.message : String(error);
  }
  byId('token-form').hidden = admin;
  actionsKey = '';
  if (lastState !== undefined) renderActions(lastState.actions);
}

let lastState: State | undefined;

function connect(): void {
  const badge = byId('connection');
  const events = new EventSource('ui/events');
  events.addEventListener('open', () => {
    badge.textContent = 'live';
    badge.className = 'badge ok';
  });
  events.addEventListener('error', () => {
    badge.textContent = 'reconnecting';
    badge.className = 'badge bad';
  });
  events.addEventListener('state', (event) => {
    lastState = JSON.parse((event as MessageEvent<string>).data) as State;
    document.body.dataset['updatedAt'] = String(lastState.atMs);
    render(lastState);
  });
}

byId<HTMLFormElement>('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = byId<HTMLInputElement>('token').value.trim();
  if (value === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
  byId<HTMLInputElement>('token').value = '';
  void checkAccess();
});

void checkAccess();
connect();

export {};
