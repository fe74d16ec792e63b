/* The live dashboard: polls /dashboard/data (series the admin scrapes from every service's /metrics)
   and draws each chart with uPlot. Plain script, no build step, nothing from the network but this server. */
(function () {
  'use strict';
  var COLORS = ['#f5a623', '#61afef', '#98c379', '#e06c75', '#c678dd', '#56b6c2', '#d19a66', '#abb2bf', '#e5c07b', '#be5046', '#7ec699', '#ff79c6'];
  var plots = {};
  var markers = [];
  var state = { updates: 0, charts: {}, markers: 0, steps: [] };
  window.__dashboard = state;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** Dashed vertical lines where a cutover step changed, labelled "feature → step". */
  function markersPlugin() {
    return {
      hooks: {
        draw: [
          function (u) {
            var ctx = u.ctx;
            var min = u.scales.x.min, max = u.scales.x.max;
            ctx.save();
            ctx.strokeStyle = '#f5a623';
            ctx.fillStyle = '#f5a623';
            ctx.setLineDash([4, 4]);
            ctx.lineWidth = 1;
            ctx.font = 11 * devicePixelRatio + 'px system-ui';
            var shown = 0;
            markers.forEach(function (m) {
              if (m.t < min || m.t > max) return;
              // Labels of nearby changes stagger down so they do not overlap.
              var row = shown++ % 3;
              var x = Math.round(u.valToPos(m.t, 'x', true));
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
              ctx.fillText(m.feature + ' → ' + m.to_step, x + 3, u.bbox.top + (12 + 13 * row) * devicePixelRatio);
            });
            ctx.restore();
          },
        ],
      },
    };
  }

  function makePlot(id, chart, target) {
    var unit = target.getAttribute('data-unit');
    var stepped = id === 'steps';
    var series = [{ label: 'time' }].concat(
      chart.series.map(function (name, i) {
        var s = { label: name, stroke: COLORS[i % COLORS.length], width: name === 'total' ? 2.5 : 1.5, spanGaps: false };
        if (stepped && uPlot.paths && uPlot.paths.stepped) s.paths = uPlot.paths.stepped({ align: 1 });
        return s;
      }),
    );
    var opts = {
      width: Math.max(300, target.clientWidth - 16),
      height: 240,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1]; } } },
      axes: [
        { stroke: '#8a94a6', grid: { stroke: '#263040' } },
        { stroke: '#8a94a6', grid: { stroke: '#263040' }, label: unit, size: 60 },
      ],
      legend: { live: true },
      plugins: [markersPlugin()],
    };
    return new uPlot(opts, chart.data, target);
  }

  function render(id, chart) {
    var target = document.getElementById('chart-' + id);
    var points = chart.data[0] ? chart.data[0].length : 0;
    var nonNull = 0;
    for (var i = 1; i < chart.data.length; i++) for (var j = 0; j < chart.data[i].length; j++) if (chart.data[i][j] !== null) nonNull++;
    state.charts[id] = { points: points, values: nonNull, series: chart.series.slice() };
    target.setAttribute('data-points', String(points));
    target.setAttribute('data-values', String(nonNull));
    var existing = plots[id];
    var key = chart.series.join('\u0000');
    if (chart.series.length === 0) {
      if (!target.querySelector('.empty')) target.appendChild(el('div', { class: 'empty' }, 'no data yet'));
      return;
    }
    var empty = target.querySelector('.empty');
    if (empty) empty.remove();
    if (existing && existing.key === key) {
      existing.plot.setData(chart.data);
      return;
    }
    if (existing) existing.plot.destroy();
    plots[id] = { key: key, plot: makePlot(id, chart, target) };
  }

  function renderSteps(steps, list) {
    var body = document.querySelector('#steps tbody');
    body.textContent = '';
    steps.forEach(function (s) {
      var tr = el('tr', { 'data-feature': s.feature, 'data-step': String(s.step) });
      tr.appendChild(el('td', {}, s.feature));
      tr.appendChild(el('td', {}, String(s.step)));
      tr.appendChild(el('td', {}, s.step_name));
      tr.appendChild(el('td', {}, s.mode));
      body.appendChild(tr);
    });
    var ol = document.getElementById('markers');
    ol.textContent = '';
    list.slice(-30).reverse().forEach(function (m) {
      var li = el('li', { 'data-feature': m.feature });
      li.appendChild(el('b', {}, new Date(m.t * 1000).toLocaleTimeString() + ' ' + m.feature + ' ' + m.from_step + ' → ' + m.to_step));
      li.appendChild(document.createTextNode(' ' + m.action + ' by ' + m.actor + (m.reason ? ': ' + m.reason : '')));
      ol.appendChild(li);
    });
  }

  /** The analysis of every feature past legacy and every autopilot run: verdicts, counters, next check, why it waits. */
  function renderAutopilot(rows) {
    var body = document.querySelector('#autopilot tbody');
    body.textContent = '';
    (rows || []).filter(function (a) { return a.step > 0 || a.run === 'running' || a.run === 'waiting'; }).forEach(function (a) {
      var tr = el('tr', { 'data-feature': a.feature, 'data-run': a.run });
      tr.appendChild(el('td', {}, a.feature));
      tr.appendChild(el('td', { class: 'run-' + a.run }, a.run + (a.manual_judgement ? ' (manual step)' : '')));
      tr.appendChild(el('td', {}, a.step + '/' + a.steps + ' ' + a.step_name + (a.soak_remaining_seconds > 0 ? ' · soak ' + a.soak_remaining_seconds + 's left' : '')));
      var gates = a.gates.map(function (g) { return g.gate + ' ' + g.verdict; }).join(', ');
      tr.appendChild(el('td', { class: 'outcome-' + (a.last_outcome || 'none') }, (a.last_outcome || 'not yet') + (gates ? ': ' + gates : '')));
      tr.appendChild(el('td', {}, a.passes + '/' + a.passes_needed));
      tr.appendChild(el('td', {}, a.failures + '/' + a.failure_threshold));
      tr.appendChild(el('td', {}, String(a.no_data)));
      tr.appendChild(el('td', {}, a.next_check_in_seconds === null ? '-' : 'in ' + a.next_check_in_seconds + 's (every ' + a.interval_seconds + 's)'));
      tr.appendChild(el('td', {}, a.paused ? 'paused' : a.waiting || ''));
      body.appendChild(tr);
    });
    state.autopilot = rows || [];
  }

  /** Lockdown as the grant watcher last read it: a red bar while grants on event data drifted from the cutover state. */
  function renderLockdown(l) {
    var box = document.getElementById('lockdown');
    if (!l) { box.hidden = true; return; }
    box.hidden = false;
    box.setAttribute('data-state', l.state);
    if (l.state === 'drift') box.textContent = 'LOCKDOWN DRIFT: ' + l.drift.join('; ') + ' — every advance is refused until it is revoked (runbooks/security.md: drift)';
    else if (l.state === 'holds') box.textContent = 'lockdown holds: only Harpoon touches event data (checked ' + new Date(l.checked_at).toLocaleTimeString() + ')';
    else if (l.state === 'not-locked') box.textContent = 'lockdown not entered yet';
    else box.textContent = 'lockdown: not checked yet';
    state.lockdown = l.state;
  }

  function renderSources(sources) {
    var f = document.getElementById('sources');
    f.textContent = 'scraping: ';
    sources.forEach(function (s, i) {
      var span = el('span', { class: s.up ? 'up' : 'down', title: s.error || '' }, s.job + (s.up ? '' : ' (down)'));
      f.appendChild(span);
      if (i < sources.length - 1) f.appendChild(document.createTextNode(' · '));
    });
  }

  var interval = 2000;
  var status = document.getElementById('status');
  function poll() {
    fetch('/dashboard/data', { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (d) {
        interval = d.interval_ms || interval;
        markers = d.markers || [];
        Object.keys(d.charts).forEach(function (id) { render(id, d.charts[id]); });
        renderSteps(d.steps, markers);
        renderAutopilot(d.autopilot);
        renderLockdown(d.lockdown);
        renderSources(d.sources);
        var cap = document.querySelector('#chart-connections figcaption');
        cap.textContent = 'MySQL connections, total and by user (server-measured)' + (d.max_connections ? ' · max_connections ' + d.max_connections : '');
        state.updates++;
        state.markers = markers.length;
        state.steps = d.steps;
        state.updatedAt = Date.now();
        status.className = 'status';
        status.textContent = 'live · updated ' + new Date().toLocaleTimeString() + (d.history_error ? ' · ' + d.history_error : '');
      })
      .catch(function (err) {
        status.className = 'status stale';
        status.textContent = 'cannot reach the admin port (' + err.message + '); retrying';
      })
      .then(function () { setTimeout(poll, interval); });
  }
  window.addEventListener('resize', function () {
    Object.keys(plots).forEach(function (id) {
      var t = document.getElementById('chart-' + id);
      plots[id].plot.setSize({ width: Math.max(300, t.clientWidth - 16), height: 240 });
    });
  });
  poll();
})();
