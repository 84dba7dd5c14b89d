/**
 * Mapping an imported training record onto its source, with one fallback: module paths that all start
 * with a wrapper the source does not define (Lightning logs `model.layers.0.weight` for a LightningModule
 * holding `self.model = Net()`; the file defines Net) are mapped again without that first component.
 */
import type * as vscode from 'vscode';
import type { TrainingRecord } from '../../engine/train/record';
import type { DocumentMapping, SourceMapper } from '../sourceAnchors';

/** The record with the first path component removed when every module below the root shares it, else null. */
export function withoutLeadingModule(record: TrainingRecord): TrainingRecord | null {
  const paths = record.modules.map((m) => m.path).filter((p) => p !== '');
  const first = paths[0]?.split('.')[0];
  if (!first || !paths.every((p) => p === first || p.startsWith(`${first}.`)) || !paths.some((p) => p !== first)) return null;
  const modules = record.modules
    .filter((m) => m.path !== first)
    .map((m) => (m.path === '' ? m : { ...m, path: m.path.slice(first.length + 1) }));
  const strip = (p: string) => (p === first ? '' : p.startsWith(`${first}.`) ? p.slice(first.length + 1) : p);
  return { ...record, modules, anomaly: record.anomaly && { ...record.anomaly, modulePath: strip(record.anomaly.modulePath) } };
}

export async function mapTrainingRecord(mapper: SourceMapper, document: vscode.TextDocument, record: TrainingRecord): Promise<{ record: TrainingRecord; mapping: DocumentMapping }> {
  const mapping = await mapper.map(document, record);
  if (mapping.anchors.length > 0) return { record, mapping };
  const stripped = withoutLeadingModule(record);
  if (!stripped) return { record, mapping };
  const again = await mapper.map(document, stripped);
  return again.anchors.length > mapping.anchors.length ? { record: stripped, mapping: again } : { record, mapping };
}
