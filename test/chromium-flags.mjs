// Flags for Debian's Chromium in these tests (see ../shared/NOTES.md): headless as root, no network
// chatter (the machine has no internet), a debugging port chosen by Chromium, on loopback only.
export function chromiumFlags({ headless = true, profile, webgpu = false }) {
  return [
    ...(headless ? ['--headless'] : []),
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-dev-shm-usage',
    '--password-store=basic',
    '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0',
    `--user-data-dir=${profile}`,
    ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
  ];
}
