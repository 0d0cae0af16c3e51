'use strict'

// Runs the Level project's own conformance suite (abstract-level 1.x, about a thousand test
// cases) against many-level guests whose host is the Rust `multilevel serve --protocol
// many-level`. Every database the suite creates gets its own server process and its own empty
// LMDB directory.
//
//   node abstract-suite.js           guests as many-level's defaults make them
//   node abstract-suite.js --retry   guests with `retry: true` (no snapshots; see below)
//
// Nothing is skipped here. The suite itself leaves out what the guest's manifest says it lacks,
// which is many-level's choice, not the host's:
// - open-create-if-missing-test and open-error-if-exists-test: a guest cannot create or refuse
//   to create the host's database (manifest: createIfMissing and errorIfExists false);
// - the 'view' (Uint8Array) key encoding cases of sublevel-test: the guest declares only the
//   'buffer' encoding;
// - iterator-snapshot-test runs without --retry and iterator-no-snapshot-test with it, since a
//   retrying guest declares no snapshots (a reopened iterator sees a newer snapshot).
//
// Skipped by this file, each for a guest-side reason (see `skips` below).

const tape = require('tape')
const suite = require('abstract-level/test')
const { ManyLevelGuest } = require('many-level')
const { Host, stopAll } = require('./host')

const retry = process.argv.includes('--retry')

// Test name -> why it cannot pass against any host. Only the first test of that name is
// skipped: it runs on the database itself; the second, in the suite's sublevel pass, passes.
const skips = new Map(retry
  ? [[
      'value-only iterator',
      'many-level 2.0.0\'s guest forces `keys: true` into the options it hands abstract-level ' +
      'when retry is on (guest.js, Iterator constructor), so the iterator yields the key the test ' +
      'expects to be undefined; the host sends exactly what the guest asked for'
    ]]
  : [])

function test (name, ...rest) {
  const reason = skips.get(name)
  if (reason === undefined) return tape(name, ...rest)
  skips.delete(name)
  // Reported in the TAP output as a skipped assertion, with its reason.
  return tape(name, (t) => {
    t.skip(reason)
    t.end()
  })
}
test.onFinish = tape.onFinish

suite({
  test,
  factory (options) {
    const host = new Host()
    // `_remote` is many-level's hook for its own abstract-level run: each open() of the guest
    // (the suite closes and reopens databases) gets a fresh connection from it.
    const db = new ManyLevelGuest({ ...options, retry, _remote: () => host.connect() })
    db.on('opening', () => host.cancelStop())
    db.on('closed', () => host.stopSoon())
    return db
  }
})

// The suite leaves some databases open; their servers would keep this process alive.
tape.onFinish(stopAll)
