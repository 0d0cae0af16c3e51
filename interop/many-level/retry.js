'use strict'

// A many-level guest with `retry: true` keeps working while its Rust host is killed (SIGKILL)
// and restarted on the same database: every put it was told succeeded is there afterwards, and
// iterators read across the kills, forward, reverse and with a limit, yield every key of their
// range in order with none lost.
//
// What the host cannot fix: many-level 2.0.0's guest keeps the entries it had received but not
// yet consumed when the connection dropped, and asks the new connection to resume after the
// last entry it *consumed*, so it yields those entries twice (a guest-side bug, see
// ../../../shared/reference/multileveldown-behaviour.md section 8, item 1). The checks below allow
// exactly that: with repeats removed (first occurrence kept), the keys are the range, in order.
// The data set has keys that extend other keys (`p000120` and `p000120-x`), which the original
// host loses when it resumes a reverse iterator.

const test = require('tape')
const { pipeline } = require('readable-stream')
const { ManyLevelGuest } = require('many-level')
const { Host, stopAll } = require('./host')

const KILLS = Number(process.env.MULTILEVEL_NODE_KILLS || 6)
const PRELOAD = 3000
const WRITES = 600

const pad = (i) => String(i).padStart(6, '0')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Connects `db` to `host`, and again whenever the connection ends, as many-level's README shows.
function keepConnected (db, host, counters) {
  let stopped = false
  const connect = () => {
    if (stopped) return
    const socket = host.connect()
    socket.once('connect', () => { counters.connections++ })
    pipeline(socket, db.connect(), socket, () => {
      if (!stopped) setTimeout(connect, 20)
    })
  }
  connect()
  return () => { stopped = true }
}

async function readAll (iterator, pauseEvery) {
  const keys = []
  for await (const [key, value] of iterator) {
    if (value !== `v${key}`) throw new Error(`wrong value for ${key}: ${value}`)
    keys.push(key)
    // Slow enough that the host is killed mid-iteration, several times.
    if (keys.length % pauseEvery === 0) await sleep(15)
  }
  return keys
}

// `got` with repeats removed, keeping each key's first occurrence.
function firstOccurrences (got) {
  const seen = new Set()
  return got.filter((key) => !seen.has(key) && seen.add(key))
}

// Checks that `got`, repeats removed, is `want`; reports differences briefly.
function checkKeys (t, name, got, want) {
  const distinct = firstOccurrences(got)
  const at = distinct.findIndex((key, i) => key !== want[i])
  const mismatch = at === -1 && distinct.length !== want.length ? Math.min(distinct.length, want.length) : at
  const detail = mismatch === -1
    ? ''
    : `; first difference at ${mismatch}: got ${distinct[mismatch]}, want ${want[mismatch]}`
  t.ok(mismatch === -1,
    `${name}: ${want.length} keys in order, none lost (${got.length - distinct.length} repeated by the guest)${detail}`)
}

test(`a retrying guest survives ${KILLS} kills of its host`, async function (t) {
  const host = new Host({ durable: true })
  const counters = { connections: 0 }
  const db = new ManyLevelGuest({ retry: true })
  const disconnect = keepConnected(db, host, counters)

  const preload = []
  for (let i = 0; i < PRELOAD; i++) {
    for (const key of i % 10 === 0 ? [`p${pad(i)}`, `p${pad(i)}-x`] : [`p${pad(i)}`]) {
      preload.push({ type: 'put', key, value: `v${key}` })
    }
  }
  await db.batch(preload)
  const expected = preload.map((op) => op.key)

  let writing = true
  const kills = (async () => {
    for (let round = 0; round < KILLS; round++) {
      await sleep(150)
      await host.kill()
      await sleep(50)
      host.start()
    }
    writing = false
  })()

  // Writers: each put is awaited before the next; a put in flight during a kill is resent.
  const acknowledged = []
  const writers = [0, 1, 2, 3].map(async (w) => {
    for (let i = w; writing || i < WRITES; i += 4) {
      const key = `w${pad(i)}`
      await db.put(key, `v${key}`)
      acknowledged.push(key)
    }
  })

  const forward = readAll(db.iterator({ gte: 'p', lt: 'q' }), 100)
  const reverse = readAll(db.iterator({ gte: 'p', lt: 'q', reverse: true }), 100)
  const limited = readAll(db.iterator({ gt: `p${pad(10)}`, limit: 1000 }), 50)

  const timeout = setTimeout(() => { t.fail('timed out after 60 s'); process.exit(1) }, 60000)
  const [fwd, rev, lim] = await Promise.all([forward, reverse, limited, kills, ...writers])
  clearTimeout(timeout)

  t.ok(counters.connections > KILLS, `reconnected after every kill (${counters.connections} connections)`)
  checkKeys(t, 'forward iterator', fwd, expected)
  checkKeys(t, 'reverse iterator', rev, expected.slice().reverse())
  // The guest counts repeats against the limit, so fewer than 1000 distinct keys may come.
  t.is(lim.length, 1000, 'limited iterator: stopped at its limit of 1000')
  const after = expected.slice(expected.indexOf(`p${pad(10)}`) + 1)
  checkKeys(t, 'limited iterator', lim, after.slice(0, firstOccurrences(lim).length))

  t.ok(acknowledged.length >= WRITES, `${acknowledged.length} puts acknowledged`)
  const values = await db.getMany(acknowledged)
  const missing = acknowledged.filter((key, i) => values[i] !== `v${key}`)
  t.same(missing, [], 'every acknowledged put is there after the kills')

  // A last kill and restart: what was acknowledged is on disk, not only in the old process.
  await host.kill()
  host.start()
  t.is(await db.get(acknowledged[acknowledged.length - 1]), `v${acknowledged[acknowledged.length - 1]}`,
    'the last acknowledged put survives one more kill')

  disconnect()
  await db.close()
})

test.onFinish(stopAll)
