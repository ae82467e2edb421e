// The JavaScript SDK loaded natively, for the tests in this folder: agh's
// host interfaces exist only inside a component, so each `agh:` import
// becomes a stand-in that answers every call with the host error it is
// given (`hostError`), or a no-op log.
import { register } from 'node:module';

const stub = `
  const failing = () => { throw globalThis.aghHostError ?? new Error('no host here'); };
  export const log = () => {};
  export const run = failing, converse = failing, writeFile = failing,
    readFile = failing, placeAsset = failing, reset = failing,
    listFiles = failing, read = failing;`;
register(
  'data:text/javascript,' +
    encodeURIComponent(
      `export async function resolve(specifier, context, next) {
         if (specifier.startsWith('agh:')) {
           return { url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}), shortCircuit: true };
         }
         return next(specifier, context);
       }`,
    ),
);

export const agh = await import(new URL('../sdk-js/agh-grader.js', import.meta.url));

/** Makes the next host call fail as the host fails it: a WIT `error`. */
export function hostError(tag, val) {
  globalThis.aghHostError = Object.assign(new Error(tag), { payload: { tag, val } });
}
