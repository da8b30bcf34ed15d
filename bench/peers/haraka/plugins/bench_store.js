// bench_store: Haraka queue plugin for bench/run.sh. Writes each accepted message to
// $HARAKA_BENCH_STORE/<uuid>.eml (written to tmp/, then renamed, like a Maildir) and answers
// 250 only after the file is closed; a write error becomes a 451 (DENYSOFT).
const fs = require('node:fs')
const path = require('node:path')

exports.register = function () {
    this.dir = process.env.HARAKA_BENCH_STORE || '/tmp/haraka-bench-store'
    fs.mkdirSync(path.join(this.dir, 'tmp'), { recursive: true })
    fs.mkdirSync(path.join(this.dir, 'new'), { recursive: true })
}

exports.hook_queue = function (next, connection) {
    const txn = connection?.transaction
    if (!txn) return next()
    const tmp = path.join(this.dir, 'tmp', `${txn.uuid}.eml`)
    const dst = path.join(this.dir, 'new', `${txn.uuid}.eml`)
    const ws = fs.createWriteStream(tmp)
    let done = false
    const finish = (code, msg) => {
        if (done) return
        done = true
        next(code, msg)
    }
    ws.once('error', (err) => finish(DENYSOFT, `store failed: ${err.message}`))
    ws.once('close', () => {
        fs.rename(tmp, dst, (err) => (err ? finish(DENYSOFT, 'store failed') : finish(OK)))
    })
    txn.message_stream.pipe(ws)
}
