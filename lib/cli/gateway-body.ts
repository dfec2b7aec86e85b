/**
 * Request-body helpers shared by the gateway's route modules.
 */

/** A JSON object body. */
export type Json = Record<string, unknown>;

/** A problem the client caused: answered with `status` (400 unless said) and `{"success": false, "error"}`. */
export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** The string field `name` of `body`; a BadRequest when it is missing or not a string. */
export function stringField(body: Json, name: string): string {
  const v = body[name];
  if (v === undefined) throw new BadRequest(`missing field "${name}"`);
  if (typeof v !== 'string') throw new BadRequest(`field "${name}" must be a string`);
  return v;
}
