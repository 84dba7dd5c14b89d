/**
 * The small dataset a model can ship inside its export: a language model whose ONNX metadata holds
 * `gradientlens.vocab` (a JSON list of tokens, index = id) and `gradientlens.sample_text` trains on
 * windows of that text instead of random ids (examples/tiny_gpt.py writes both). Training on it makes
 * the loss curve mean something: the model learns the text.
 */
import { Tensor } from '../tensor';
import type { Feeds, OnnxModel } from '../onnx';

export interface TextDataset {
  /** The token input fed with windows of the text. */
  input: string;
  ids: number[];
  description: string;
}

function parseVocab(raw: string | undefined): string[] | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw);
    return Array.isArray(v) && v.every((t) => typeof t === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** The model's shipped text as token ids, or the reason there is none. */
export function textDataset(model: OnnxModel): TextDataset | { reason: string } {
  const vocab = parseVocab(model.metadata['gradientlens.vocab']);
  const text = model.metadata['gradientlens.sample_text'];
  if (!vocab || typeof text !== 'string' || text.length === 0) {
    return { reason: 'the model ships no dataset (ONNX metadata gradientlens.vocab and gradientlens.sample_text, see examples/tiny_gpt.py)' };
  }
  const input = model.inputs.find((i) => i.role === 'tokens');
  if (!input) return { reason: 'the model has sample text but no token-id input to feed it to' };
  // Longest-match tokenisation, so multi-character tokens work too; the examples use characters.
  const byLength = vocab.map((t, id) => ({ t, id })).filter((x) => x.t.length > 0).sort((a, b) => b.t.length - a.t.length);
  const ids: number[] = [];
  for (let i = 0; i < text.length;) {
    const hit = byLength.find((x) => text.startsWith(x.t, i));
    if (!hit) return { reason: `the sample text has ${JSON.stringify(text[i])} at position ${i}, which is not in the vocabulary` };
    ids.push(hit.id);
    i += hit.t.length;
  }
  return { input: input.name, ids, description: `${ids.length} tokens of the model's sample text` };
}

/**
 * The batch of step `step` (1-based): `batch` windows of `seq` tokens, consecutive windows start `seq / 2`
 * tokens apart and wrap around the text, so successive steps walk through it.
 */
export function textBatch(ds: TextDataset, step: number, batch: number, seq: number): Feeds {
  if (ds.ids.length < 2) throw new RangeError('the sample text is too short to train on');
  const stride = Math.max(1, seq >> 1);
  const data = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const start = ((step - 1) * batch + b) * stride;
    for (let t = 0; t < seq; t++) data[b * seq + t] = ds.ids[(start + t) % ds.ids.length];
  }
  return { [ds.input]: new Tensor(data, [batch, seq]) };
}
