/**
 * Validating a custom resource against its CRD's openAPIV3Schema, offline. Fields the schema does not
 * name are errors here: the API server would silently drop them, which is how a typo loses a setting.
 */
import { readFileSync } from 'node:fs';
import Ajv, { type AnySchema } from 'ajv';
import { parse } from 'yaml';

type Schema = { [key: string]: unknown; properties?: Record<string, Schema>; items?: Schema; additionalProperties?: unknown };

/** The checks the API server makes of every object's metadata, as far as our manifests use it. */
const objectMeta: Schema = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 },
    namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

/** Returns the problems of `resource` against `version` of the CRD in `crdFile`; none means valid. */
export function crdValidator(crdFile: string, version: string): (resource: unknown) => string[] {
  const crd = parse(readFileSync(crdFile, 'utf8'));
  const schema = crd.spec.versions.find((v: { name: string }) => v.name === version)?.schema?.openAPIV3Schema as Schema;
  if (!schema) throw new Error(`${crdFile} has no schema for version ${version}`);
  const apiVersion = `${crd.spec.group}/${version}`;
  const closed = close({
    ...schema,
    required: [...((schema.required as string[]) ?? []), 'apiVersion', 'kind', 'metadata'],
    properties: {
      ...schema.properties,
      apiVersion: { type: 'string', const: apiVersion },
      kind: { type: 'string', const: crd.spec.names.kind },
      metadata: objectMeta,
    },
  });
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  ajv.addKeyword('x-kubernetes-preserve-unknown-fields');
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat('date-time', true);
  ajv.addFormat('int64', { type: 'number', validate: Number.isSafeInteger });
  const validate = ajv.compile(closed as AnySchema);
  return (resource) =>
    validate(resource) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? `: ${e.params.additionalProperty}` : ''}`);
}

function close(schema: Schema): Schema {
  const closed: Schema = { ...schema };
  if (schema.properties) {
    closed.properties = Object.fromEntries(Object.entries(schema.properties).map(([key, value]) => [key, close(value)]));
    if (schema.additionalProperties === undefined && !schema['x-kubernetes-preserve-unknown-fields']) closed.additionalProperties = false;
  }
  if (schema.items) closed.items = close(schema.items);
  return closed;
}
