// OpenFeature's JavaScript server SDK with its OFREP provider, against a running Sluice.
//
// Run by crates/sluice/tests/it/sdk.rs after importing tests/sdk/flags.json.
// Environment: SLUICE_OFREP_URL (e.g. http://127.0.0.1:7070), SLUICE_CLIENT_KEY.
// Exits non-zero, naming the check, when an answer is not what an application expects.

import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { isDeepStrictEqual } from 'node:util';

const failures = [];
const check = (what, got, want) => {
  if (!isDeepStrictEqual(got, want)) {
    failures.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
};

const baseUrl = process.env.SLUICE_OFREP_URL;
const key = process.env.SLUICE_CLIENT_KEY;
await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl, headers: [['X-API-Key', key]] }));
const client = OpenFeature.getClient('sluice-sdk-test');

let d = await client.getBooleanDetails('bool-flag', false);
check('bool value', [d.value, typeof d.value], [true, 'boolean']);
check('bool reason', d.reason, 'STATIC');
check('bool variant', d.variant, 'on');
check('bool metadata', d.flagMetadata, { team: 'checkout' });

d = await client.getStringDetails('string-flag', 'none');
check('string value', d.value, '#0000ff');
check('string variant', d.variant, 'blue');
check('string metadata', d.flagMetadata, { team: 'checkout', owner: 'web', version: 3 });

d = await client.getNumberDetails('int-flag', 0);
check('int value', [d.value, Number.isInteger(d.value)], [42, true]);

// JavaScript has one number type: 0.0 arrives as the number 0 (Python checks it is a float).
d = await client.getNumberDetails('float-zero', 1.5);
check('float 0.0 value', [d.value, typeof d.value], [0, 'number']);
check('float 0.0 reason', d.reason, 'STATIC');
check('float 0.0 error', d.errorCode, undefined);
d = await client.getNumberDetails('float-half', 1.5);
check('float value', d.value, 0.5);

d = await client.getObjectDetails('object-flag', {});
check('object value', d.value, { limits: [1, 2, 3], name: 'A', ratio: 0 });

d = await client.getBooleanDetails('targeted', false, { targetingKey: 'user-1', email: 'ann@example.com' });
check('targeting match value', d.value, true);
check('targeting match reason', d.reason, 'TARGETING_MATCH');
d = await client.getBooleanDetails('targeted', true, { targetingKey: 'user-2', email: 'bob@elsewhere.org' });
check('no match value', d.value, false);
check('no match reason', d.reason, 'DEFAULT');

// Disabled: Sluice answers without a value, so the application's code default is used.
d = await client.getBooleanDetails('disabled', false);
check('disabled falls back to the code default', d.value, false);
console.log(`disabled: reason=${d.reason} error=${d.errorCode}`);

d = await client.getStringDetails('no-such-flag', 'fallback');
check('not found value', d.value, 'fallback');
check('not found error', d.errorCode, 'FLAG_NOT_FOUND');
check('not found reason', d.reason, 'ERROR');

d = await client.getStringDetails('dynamic', 'fallback', { pick: 'zzz' });
check('parse error value', d.value, 'fallback');
check('parse error code', d.errorCode, 'PARSE_ERROR');
d = await client.getStringDetails('dynamic', 'fallback', { pick: 'b' });
check('dynamic value', d.value, 'B');

d = await client.getStringDetails('bool-flag', 'fallback');
check('type mismatch value', d.value, 'fallback');
check('type mismatch code', d.errorCode, 'TYPE_MISMATCH');

await OpenFeature.close();
if (failures.length > 0) {
  for (const f of failures) console.error('FAIL', f);
  process.exit(1);
}
console.log('javascript OFREP client: all checks passed');
