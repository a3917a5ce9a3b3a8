// store.js — what the phone keeps, in IndexedDB (database "corral", one key-value store): the pairing ("auth": device
// token, device id, team, team key K), the last state of the sessions with the id of the last event applied
// ("state"), and actions not yet accepted by the relay ("outbox"). Used by the page and the service worker.

const DB = 'corral';
const STORE = 'kv';
let dbp = null;

function db() {
  if (!dbp) {
    dbp = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => {
        const d = req.result;
        d.onversionchange = () => {
          d.close();
          dbp = null;
        };
        resolve(d);
      };
      req.onerror = () => {
        dbp = null;
        reject(req.error);
      };
    });
  }
  return dbp;
}

function run(mode, fn) {
  return db().then(
    (d) =>
      new Promise((resolve, reject) => {
        const tx = d.transaction(STORE, mode);
        const r = fn(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(r && 'result' in r ? r.result : undefined);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
      }),
  );
}

/** The value at key, or undefined. */
export function get(key) {
  return run('readonly', (s) => s.get(key));
}

/** Stores value at key (a structured-clonable value: maps, arrays, Uint8Array...). */
export function put(key, value) {
  return run('readwrite', (s) => s.put(value, key));
}

export function del(key) {
  return run('readwrite', (s) => s.delete(key));
}

/** The pairing: {token, device, team, key: Uint8Array(32) | null, name, paired} or undefined. */
export const loadAuth = () => get('auth');
export const saveAuth = (auth) => put('auth', auth);
