// Builds the real danmaku binary and runs `danmaku serve` on a free port with
// a temporary data directory, for the browser tests.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * @returns {Promise<{base: string, logs: () => string, stop: () => Promise<void>}>}
 */
export async function startServe() {
  const dir = mkdtempSync(join(tmpdir(), 'danmaku-browser-'));
  const bin = join(dir, 'danmaku');
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (b) => { out += b; });
  proc.stderr.on('data', (b) => { out += b; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(base + '/readyz');
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('danmaku serve did not become ready:\n' + out);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    logs: () => out,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
