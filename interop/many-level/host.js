'use strict'

// Starts and stops real `multilevel serve --protocol many-level` processes, each on its own
// Unix socket and its own empty LMDB directory, for the Node scripts beside this file.

const { spawn } = require('child_process')
const fs = require('fs')
const net = require('net')
const os = require('os')
const path = require('path')

const root = path.resolve(__dirname, '..', '..')

// The program to run: $MULTILEVEL_BIN, else the debug build that `npm test` makes first.
function binary () {
  const target = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
  const file = process.env.MULTILEVEL_BIN || path.join(target, 'debug', 'multilevel')
  if (!fs.existsSync(file)) {
    throw new Error(`no multilevel binary at ${file}: run \`cargo build -p multilevel-tokio\` or set MULTILEVEL_BIN`)
  }
  return path.resolve(file)
}

const program = binary()
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'multilevel-many-level-'))
const running = new Set()
const sleeper = new Int32Array(new SharedArrayBuffer(4))

// Kills every server still running (their guests' sockets then close, which lets Node exit).
function stopAll () {
  for (const host of running) host.child.kill('SIGKILL')
}

process.on('exit', () => {
  stopAll()
  fs.rmSync(scratch, { recursive: true, force: true })
})

// Interrupted (Ctrl-C, a CI timeout): the servers must not outlive us.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(130))
}

let counter = 0

// A host serving a fresh database. The constructor returns once the server is listening: it
// waits synchronously, because abstract-level's factory must return a database synchronously.
class Host {
  // `durable`: fsync every commit (the server's default); otherwise --no-sync, which a
  // killed process does not make lose anything (the page cache survives it, not a crash).
  constructor ({ dir, durable = false } = {}) {
    counter += 1
    this.dir = dir || path.join(scratch, `host-${counter}`)
    this.socket = path.join(this.dir, 'socket')
    this.log = path.join(this.dir, 'server.log')
    this.stopTimer = null
    this.durable = durable
    fs.mkdirSync(this.dir, { recursive: true })
    this.start()
  }

  // Starts the server process (again, after kill()) on the same database and socket.
  start () {
    const out = fs.openSync(this.log, 'w')
    const args = ['serve', '--protocol', 'many-level', '--map-size', '64MiB', '--unix', this.socket]
    if (!this.durable) args.push('--no-sync')
    this.child = spawn(program, [...args, path.join(this.dir, 'db')], { stdio: ['ignore', out, out], env: { ...process.env, RUST_LOG: 'warn' } })
    fs.closeSync(out)
    // Databases the suite never closes keep their server until this process exits (see the
    // 'exit' handler above); the server must not keep the process alive.
    this.child.unref()
    running.add(this)
    this.exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.once('exit', () => running.delete(this))
    this.waitListening()
  }

  waitListening () {
    const deadline = Date.now() + 20000
    while (Date.now() < deadline) {
      const text = fs.readFileSync(this.log, 'utf8')
      if (text.includes('multilevel: serving')) return
      if (/^error/m.test(text)) break
      Atomics.wait(sleeper, 0, 0, 2)
    }
    throw new Error(`multilevel serve did not start: ${fs.readFileSync(this.log, 'utf8')}`)
  }

  // A new connection to the server, as a duplex stream for a many-level guest.
  connect () {
    return net.connect(this.socket)
  }

  // Kills the server at once, as a crash would; resolves when it is gone.
  kill () {
    this.child.kill('SIGKILL')
    return this.exited
  }

  // Stops the server a little later unless cancelStop() is called first: a test may close its
  // database and open it again, which must find the same data.
  stopSoon () {
    this.cancelStop()
    this.stopTimer = setTimeout(() => {
      this.child.kill('SIGTERM')
      this.exited.then(() => fs.rm(this.dir, { recursive: true, force: true }, () => {}))
    }, 2000)
    this.stopTimer.unref()
  }

  cancelStop () {
    if (this.stopTimer) clearTimeout(this.stopTimer)
    this.stopTimer = null
  }
}

module.exports = { Host, stopAll }
