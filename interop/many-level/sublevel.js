'use strict'

// A many-level guest's sublevel and the Rust side see the same entries: one `multilevel serve`
// process serves one database over both protocols; Node writes and reads through
// `db.sublevel('users')`, the Rust program (the `multilevel` client) through the keys
// abstract-level stores, `!users!key`, which is what the Rust clients' `sublevel("users")`
// reads and writes (tests/tests/sublevels.rs checks that side).
//
//   node sublevel.js

const { spawn, spawnSync } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')
const { pipeline } = require('readable-stream')
const { ManyLevelGuest } = require('many-level')

const root = path.resolve(__dirname, '..', '..')
const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
const program = process.env.MULTILEVEL_BIN || path.join(target, 'debug', 'multilevel')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'multilevel-sublevel-'))
const native = path.join(dir, 'native.sock')
const guestSocket = path.join(dir, 'many-level.sock')

function fail (message) {
  console.error(`sublevel: ${message}`)
  process.exitCode = 1
  throw new Error(message)
}

// The `multilevel` client program on the native socket; returns its stdout.
function cli (...args) {
  const run = spawnSync(program, [args[0], '--unix', native, ...args.slice(1)], { encoding: 'utf8', timeout: 20000 })
  if (run.status !== 0) fail(`multilevel ${args.join(' ')} exited ${run.status}: ${run.stderr}`)
  return run.stdout.replace(/\n$/, '')
}

async function main () {
  const server = spawn(program, ['serve', '--no-sync', '--unix', native, '--many-level-unix', guestSocket, path.join(dir, 'db')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: 'warn' }
  })
  try {
    let out = ''
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start: ${out}`)), 20000)
      server.stdout.on('data', (chunk) => {
        out += chunk
        if ((out.match(/multilevel: serving/g) || []).length >= 2) {
          clearTimeout(timer)
          resolve()
        }
      })
      server.once('exit', (code) => reject(new Error(`the server exited (${code}): ${out}`)))
    })

    const db = new ManyLevelGuest()
    const socket = net.connect(guestSocket)
    pipeline(socket, db.connect(), socket, () => {})
    const users = db.sublevel('users')
    await users.put('a', 'from node')
    await users.sublevel('admins').put('x', 'nested')

    const a = cli('get', '!users!a')
    if (a !== 'from node') fail(`the Rust side read ${JSON.stringify(a)} under !users!a`)
    const x = cli('get', '!users!!admins!x')
    if (x !== 'nested') fail(`the Rust side read ${JSON.stringify(x)} under !users!!admins!x`)
    cli('put', '!users!b', 'from rust')
    // Not written here: the parent's key `!users"`. abstract-level bounds a sublevel's range
    // with `lte: '!users"'`, so its guest would list that parent key in the sublevel (as the
    // key ''); the Rust clients bound it with `lt` and do not.

    const b = await users.get('b')
    if (b !== 'from rust') fail(`the guest read ${JSON.stringify(b)} for users/b`)
    const keys = await users.keys().all()
    const wanted = ['!admins!x', 'a', 'b']
    if (JSON.stringify(keys) !== JSON.stringify(wanted)) fail(`the guest's sublevel holds ${JSON.stringify(keys)}, wanted ${JSON.stringify(wanted)}`)
    await db.close()
    console.log('sublevel: a many-level guest and the Rust side share users/a, users/b and users/admins/x')
  } finally {
    server.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
