// sluice dashboard: the only script of every page (served as a static file; the CSP allows no inline
// script). It reads chart specs from <script type="application/json" id="charts">, runs their SQL
// through /api/query and draws them with Chart.js; it renders results with textContent only.
(() => {
  const $ = (selector) => document.querySelector(selector);
  const readJson = (id) => {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : undefined;
  };

  async function runQuery(sql, warehouse, chart) {
    const response = await fetch('/api/query', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify({ sql, warehouse: Boolean(warehouse), chart: Boolean(chart) }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  const isNumeric = (rows, name) =>
    rows.length > 0 &&
    rows.every(
      (r) =>
        r[name] === null ||
        typeof r[name] === 'number' ||
        (typeof r[name] === 'string' && r[name] !== '' && !Number.isNaN(Number(r[name]))),
    );

  function draw(canvas, spec, columns, rows) {
    if (typeof Chart === 'undefined' || !canvas) return;
    const names = columns.map((c) => (typeof c === 'string' ? c : c.name));
    const labelColumn = names[0];
    let labels;
    let datasets;
    if (spec.pivot) {
      const [label, series, value] = names;
      labels = [...new Set(rows.map((r) => String(r[label])))].sort();
      const bySeries = new Map();
      for (const r of rows) {
        const key = String(r[series]);
        if (!bySeries.has(key)) bySeries.set(key, new Map());
        bySeries.get(key).set(String(r[label]), Number(r[value]));
      }
      datasets = [...bySeries].map(([name, values]) => ({
        label: name,
        data: labels.map((l) => values.get(l) ?? null),
        spanGaps: true,
      }));
    } else {
      labels = rows.map((r) => String(r[labelColumn]));
      datasets = names
        .slice(1)
        .filter((n) => isNumeric(rows, n))
        .map((n) => ({ label: n, data: rows.map((r) => (r[n] === null ? null : Number(r[n]))) }));
    }
    const existing = Chart.getChart(canvas);
    if (existing) existing.destroy();
    new Chart(canvas, {
      type: spec.type || 'bar',
      data: { labels, datasets },
      options: {
        animation: false,
        indexAxis: spec.horizontal ? 'y' : 'x',
        ...(spec.stacked ? { scales: { x: { stacked: true }, y: { stacked: true } } } : {}),
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: datasets.length > 1 || spec.type === 'pie' } },
      },
    });
  }

  function showError(figure, message) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = message;
    figure.appendChild(p);
  }

  async function fillTables() {
    const specs = readJson('tables') || [];
    await Promise.all(
      specs.map(async (spec, i) => {
        const figure = document.querySelector(`[data-table="${i}"]`);
        if (!figure) return;
        try {
          const result = await runQuery(spec.sql, spec.warehouse, true);
          if (result.rows.length === 0) showError(figure, 'no data yet');
          else renderTable(figure.querySelector('.result-table'), result);
          figure.dataset.rows = String(result.rows.length);
        } catch (error) {
          showError(figure, error.message);
        }
      }),
    );
  }

  async function drawCharts() {
    const specs = readJson('charts');
    if (!specs) return;
    await Promise.all([
      fillTables(),
      ...specs.map(async (spec, i) => {
        const figure = document.querySelector(`[data-chart="${i}"]`);
        if (!figure) return;
        const canvas = figure.querySelector('canvas');
        const inline = readJson(`chart-data-${i}`);
        try {
          const result = inline || (await runQuery(spec.sql, spec.warehouse, true));
          if (result.rows.length === 0) showError(figure, 'no data yet');
          else draw(canvas, spec, result.columns, result.rows);
          figure.dataset.rows = String(result.rows.length);
        } catch (error) {
          showError(figure, error.message);
        }
      }),
    ]);
    document.body.dataset.chartsDrawn = 'true';
  }

  function renderTable(container, result) {
    container.replaceChildren();
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    for (const c of result.columns) {
      const th = document.createElement('th');
      th.textContent = `${c.name}`;
      th.title = c.type;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of result.rows) {
      const tr = body.insertRow();
      for (const c of result.columns) {
        const v = row[c.name];
        tr.insertCell().textContent =
          v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      }
    }
    container.appendChild(table);
  }

  function sqlConsole() {
    const form = $('#sql-form');
    if (!form) return;
    const csv = $('#csv');
    const status = $('#sql-status');
    const updateCsv = () => {
      const q = new URLSearchParams({ sql: $('#sql').value });
      if ($('#warehouse').checked) q.set('warehouse', '1');
      csv.href = `/api/query.csv?${q}`;
    };
    $('#sql').addEventListener('input', updateCsv);
    $('#warehouse').addEventListener('change', updateCsv);
    updateCsv();
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      status.textContent = 'running…';
      status.className = '';
      try {
        const result = await runQuery($('#sql').value, $('#warehouse').checked);
        status.textContent = `${result.rows.length} rows${result.truncated ? ` (first ${result.maxRows} shown)` : ''}, ${result.elapsedMs} ms`;
        renderTable($('#sql-result'), result);
        const figure = $('#sql-chart');
        const numeric = result.columns.slice(1).some((c) => isNumeric(result.rows, c.name));
        figure.hidden = !(numeric && result.rows.length > 0 && result.rows.length <= 200);
        if (!figure.hidden)
          draw(figure.querySelector('canvas'), { type: 'bar' }, result.columns, result.rows);
      } catch (error) {
        status.textContent = error.message;
        status.className = 'error';
        $('#sql-result').replaceChildren();
      }
    });
    if ($('#sql').value.trim()) form.requestSubmit();
  }

  function live() {
    const dot = $('#live');
    if (!dot || typeof EventSource === 'undefined') return;
    const source = new EventSource('/api/events/stream');
    let first = true;
    source.addEventListener('change', () => {
      if (first) {
        first = false;
        return;
      }
      dot.classList.add('changed');
      dot.title = 'new runs or executions: reload to see them';
    });
    source.onerror = () => dot.classList.add('offline');
  }

  drawCharts();
  sqlConsole();
  live();
})();
