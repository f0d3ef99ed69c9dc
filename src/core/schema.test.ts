import { describe, expect, it } from 'vitest';
import { type Column, diffColumns, isNullable, isSameSchema } from './schema.ts';

describe('diffColumns', () => {
  const base: Column[] = [
    { name: 'id', type: 'bigint', nullable: false },
    { name: 'name', type: 'string', comment: 'who' },
  ];

  it('ignores order, comments and an explicit nullable: true', () => {
    const next: Column[] = [
      { name: 'name', type: 'string', nullable: true },
      { name: 'id', type: 'bigint', nullable: false, comment: 'key' },
    ];
    expect(isSameSchema(diffColumns(base, next))).toBe(true);
  });

  it('reports added, removed, retyped and nullability changes', () => {
    const next: Column[] = [
      { name: 'id', type: 'bigint' },
      { name: 'name', type: 'varchar(10)' },
      { name: 'age', type: 'int' },
    ];
    expect(diffColumns(base, [...base, { name: 'age', type: 'int' }]).added).toEqual([
      { name: 'age', type: 'int' },
    ]);
    const diff = diffColumns(base, next);
    expect(diff.changed).toEqual([
      { name: 'id', from: 'bigint', to: 'bigint', nullable: { from: false, to: true } },
      { name: 'name', from: 'string', to: 'varchar(10)' },
    ]);
    expect(diffColumns(next, base).removed).toEqual([{ name: 'age', type: 'int' }]);
    expect(isSameSchema(diff)).toBe(false);
  });

  it('reports a logical type change', () => {
    const json: Column[] = [base[0] as Column, { name: 'name', type: 'string', logicalType: 'json' }];
    expect(diffColumns(base, json).changed).toEqual([{ name: 'name', from: 'string', to: 'string' }]);
  });

  it('isNullable: absent means nullable', () => {
    expect(isNullable({})).toBe(true);
    expect(isNullable({ nullable: true })).toBe(true);
    expect(isNullable({ nullable: false })).toBe(false);
  });
});
