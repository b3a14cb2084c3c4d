// Screenshot of a page after WAIT ms, in Debian's Chromium with SwiftShader (scripts/screenshot.sh).
const { chromium } = require('playwright-core');
(async () => {
  const [url, out, wait] = process.argv.slice(2);
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'] });
  const p = await b.newPage({ viewport: { width: 1600, height: 1000 } });
  p.on('console', m => { if (m.type() === 'error') console.error('console:', m.text().slice(0, 200)); });
  await p.goto(url);
  await p.waitForTimeout(Number(wait || 30000));
  await p.screenshot({ path: out });
  await b.close();
})();
