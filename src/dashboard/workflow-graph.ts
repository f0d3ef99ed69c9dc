import type { AslDefinition, AslState } from '../core/workflow.ts';
import { html, raw, type SafeHtml } from './html.ts';

/** A state of a workflow graph; nested states (Parallel branches, Map iterators) are prefixed by their parent. */
export interface GraphNode {
  readonly id: string;
  readonly label: string;
  readonly type: AslState['Type'] | 'Start' | 'End';
  /** For Task states, the function its Resource names. */
  readonly resource?: string;
  /** The Parallel/Map state it runs inside, if any. */
  readonly parent?: string;
}

/** A transition: `next` (Next/Default), `choice` (a Choice rule), `catch` (a Catch), `branch` (into a Parallel/Map body), `end`. */
export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  readonly kind: 'next' | 'choice' | 'catch' | 'branch' | 'end';
  readonly label?: string;
}

/** Nodes and edges of an ASL definition (https://states-language.net/spec.html), nested bodies flattened. */
export function workflowGraph(definition: AslDefinition): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const nodes: GraphNode[] = [{ id: '__start', label: 'Start', type: 'Start' }];
  const edges: GraphEdge[] = [];
  const ends: string[] = [];
  const walk = (
    def: AslDefinition,
    prefix: string,
    parent: string | undefined,
    entryFrom: string,
    entryKind: GraphEdge['kind'],
  ): void => {
    const id = (name: string) => `${prefix}${name}`;
    edges.push({ from: entryFrom, to: id(def.StartAt), kind: entryKind });
    for (const [name, state] of Object.entries(def.States)) {
      const resource =
        typeof state.Resource === 'string' ? state.Resource.replace(/^\$\{(.+)\}$/, '$1') : undefined;
      nodes.push({
        id: id(name),
        label: name,
        type: state.Type,
        ...(resource ? { resource } : {}),
        ...(parent ? { parent } : {}),
      });
      if (typeof state.Next === 'string') edges.push({ from: id(name), to: id(state.Next), kind: 'next' });
      if (state.Type === 'Choice') {
        const choices = Array.isArray(state.Choices) ? (state.Choices as { Next?: unknown }[]) : [];
        choices.forEach((choice, i) => {
          if (typeof choice.Next === 'string')
            edges.push({ from: id(name), to: id(choice.Next), kind: 'choice', label: `rule ${i + 1}` });
        });
        if (typeof state.Default === 'string')
          edges.push({ from: id(name), to: id(state.Default), kind: 'choice', label: 'default' });
      }
      const catches = Array.isArray(state.Catch)
        ? (state.Catch as { Next?: unknown; ErrorEquals?: unknown }[])
        : [];
      for (const c of catches) {
        if (typeof c.Next === 'string') {
          edges.push({
            from: id(name),
            to: id(c.Next),
            kind: 'catch',
            label: Array.isArray(c.ErrorEquals) ? c.ErrorEquals.join(', ') : 'catch',
          });
        }
      }
      const bodies = [
        ...(state.Branches ?? []),
        ...(state.ItemProcessor ? [state.ItemProcessor] : []),
        ...(state.Iterator ? [state.Iterator] : []),
      ];
      for (const [i, body] of bodies.entries()) walk(body, `${id(name)}/${i}/`, id(name), id(name), 'branch');
      if (state.End === true || state.Type === 'Succeed' || state.Type === 'Fail') {
        if (!parent) ends.push(id(name));
      }
    }
  };
  walk(definition, '', undefined, '__start', 'next');
  nodes.push({ id: '__end', label: 'End', type: 'End' });
  for (const from of ends) edges.push({ from, to: '__end', kind: 'end' });
  return { nodes, edges };
}

const BOX_W = 180;
const BOX_H = 34;
const GAP_X = 30;
const GAP_Y = 36;

/**
 * The graph as SVG markup in a simple layered layout: each node's layer is its longest distance
 * from Start over forward edges (edges back to an earlier layer, such as retry loops written as
 * Next, are drawn but do not push layers), nodes of a layer side by side. Every label is escaped.
 */
export function workflowSvg(graph: { nodes: readonly GraphNode[]; edges: readonly GraphEdge[] }): SafeHtml {
  const layer = new Map<string, number>([['__start', 0]]);
  // Longest path by relaxation, bounded by the node count (cycles cannot loop forever).
  for (let round = 0; round < graph.nodes.length; round++) {
    let changed = false;
    for (const e of graph.edges) {
      const from = layer.get(e.from);
      if (from === undefined) continue;
      const to = layer.get(e.to);
      if (
        to === undefined ||
        (to < from + 1 && to <= graph.nodes.length && !reaches(graph.edges, e.to, e.from))
      ) {
        layer.set(e.to, from + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const rows = new Map<number, GraphNode[]>();
  for (const n of graph.nodes) {
    const l = layer.get(n.id) ?? 0;
    rows.set(l, [...(rows.get(l) ?? []), n]);
  }
  const maxPerRow = Math.max(1, ...[...rows.values()].map((r) => r.length));
  const width = maxPerRow * (BOX_W + GAP_X) + GAP_X;
  const layers = Math.max(0, ...rows.keys()) + 1;
  const height = layers * (BOX_H + GAP_Y) + GAP_Y;
  const pos = new Map<string, { x: number; y: number }>();
  for (const [l, row] of rows) {
    const rowWidth = row.length * (BOX_W + GAP_X) - GAP_X;
    row.forEach((n, i) => {
      pos.set(n.id, { x: (width - rowWidth) / 2 + i * (BOX_W + GAP_X), y: GAP_Y + l * (BOX_H + GAP_Y) });
    });
  }
  const edgeMarkup = graph.edges.map((e) => {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) return html``;
    const x1 = a.x + BOX_W / 2;
    const y1 = a.y + BOX_H;
    const x2 = b.x + BOX_W / 2;
    const y2 = b.y;
    return html`<line class="edge edge-${e.kind}" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" marker-end="url(#arrow)"><title>${e.kind}${e.label ? `: ${e.label}` : ''}</title></line>`;
  });
  const nodeMarkup = graph.nodes.map((n) => {
    const p = pos.get(n.id) ?? { x: 0, y: 0 };
    const text = n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label;
    return html`<g class="node node-${n.type.toLowerCase()}"><title>${n.label} (${n.type}${n.resource ? `: ${n.resource}` : ''}${n.parent ? `, inside ${n.parent}` : ''})</title><rect x="${p.x}" y="${p.y}" width="${BOX_W}" height="${BOX_H}" rx="6"></rect><text x="${p.x + BOX_W / 2}" y="${p.y + BOX_H / 2 + 4}" text-anchor="middle">${text}</text></g>`;
  });
  return html`<svg class="workflow-graph" role="img" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">${raw(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"></path></marker></defs>',
  )}${edgeMarkup}${nodeMarkup}</svg>`;
}

/** True when `to` is reachable from `from` (so an edge `to -> from` closes a cycle). */
function reaches(edges: readonly GraphEdge[], from: string, to: string): boolean {
  const seen = new Set<string>([from]);
  const stack = [from];
  while (stack.length > 0) {
    const cur = stack.pop() as string;
    if (cur === to) return true;
    for (const e of edges) {
      if (e.from === cur && !seen.has(e.to)) {
        seen.add(e.to);
        stack.push(e.to);
      }
    }
  }
  return false;
}
