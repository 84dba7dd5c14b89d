/** Colours from VS Code's theme variables, so charts follow light, dark and high-contrast themes. */
export function themeColor(variable: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(variable).trim();
  return v || fallback;
}

export const HEALTH_COLORS: Record<string, [string, string]> = {
  'non-finite': ['--vscode-charts-red', '#f14c4c'],
  exploding: ['--vscode-charts-red', '#f14c4c'],
  vanishing: ['--vscode-charts-orange', '#d18616'],
  dead: ['--vscode-charts-yellow', '#cca700'],
  zero: ['--vscode-charts-purple', '#b180d7'],
  healthy: ['--vscode-charts-green', '#89d185'],
  neutral: ['--vscode-charts-blue', '#3794ff'],
};

export function healthColor(health: string): string {
  const [v, f] = HEALTH_COLORS[health] ?? HEALTH_COLORS.neutral;
  return themeColor(v, f);
}
