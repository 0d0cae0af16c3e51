'use strict'

// Runs the README's Node example ("## Node programs (many-level)", its ```js block) exactly as
// it is written, against a real `multilevel serve --protocol many-level --unix SOCKET` host, and
// checks that it prints what it should and exits by itself (status 0) within a time limit.
//
// The example reads its socket path from $MULTILEVEL_SOCKET (default /tmp/db.sock); this script
// sets it to the host's socket. The example is written into a scratch directory beside this file
// so that Node resolves its imports (many-level, readable-stream) from ./node_modules.
//
//   node readme-example.js [README]      default: ../../README.md

const { spawnSync } = require('child_process')
const fs = require('fs')
const path = require('path')
const { Host } = require('./host')

const SECTION = '## Node programs (many-level)'
const TIMEOUT_MS = Number(process.env.MULTILEVEL_EXAMPLE_TIMEOUT_MS || 20000)
const EXPECTED = 'greeting hello\n'

function fail (message) {
  console.error(`readme-example: ${message}`)
  process.exit(1)
}

// The one ```js block of the README's Node section, verbatim.
function extract (readme) {
  const text = fs.readFileSync(readme, 'utf8')
  const start = text.indexOf(`\n${SECTION}\n`)
  if (start < 0) fail(`${readme} has no "${SECTION}" section`)
  const rest = text.slice(start + SECTION.length + 2)
  const end = rest.search(/^## /m)
  const section = end < 0 ? rest : rest.slice(0, end)
  const blocks = [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((match) => match[1])
  if (blocks.length !== 1) fail(`expected one \`\`\`js block in "${SECTION}", found ${blocks.length}`)
  return blocks[0]
}

const readme = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'README.md'))
const example = extract(readme)
const scratch = fs.mkdtempSync(path.join(__dirname, '.readme-example-'))
process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }))
const file = path.join(scratch, 'app.mjs')
fs.writeFileSync(file, example)

const host = new Host()
const started = Date.now()
const run = spawnSync(process.execPath, [file], {
  env: { ...process.env, MULTILEVEL_SOCKET: host.socket },
  encoding: 'utf8',
  timeout: TIMEOUT_MS,
  killSignal: 'SIGKILL'
})
const took = Date.now() - started

if (run.error && run.error.code === 'ETIMEDOUT') {
  fail(`the example did not exit within ${TIMEOUT_MS} ms (stdout: ${JSON.stringify(run.stdout)}, stderr: ${JSON.stringify(run.stderr)})`)
}
if (run.error) fail(`could not run node: ${run.error.message}`)
if (run.status !== 0) fail(`the example exited with ${run.status ?? run.signal}: ${run.stderr}`)
if (run.stdout !== EXPECTED) fail(`the example printed ${JSON.stringify(run.stdout)}, expected ${JSON.stringify(EXPECTED)}`)
console.log(`readme-example: the README's Node example printed ${JSON.stringify(EXPECTED)} and exited 0 in ${took} ms`)
