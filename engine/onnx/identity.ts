/**
 * Parameter identity in dynamo exports (torch.onnx.export with dynamo=True, the default since torch 2.9).
 *
 * With optimize=True (the default) the exporter rewrites parameters: it merges initializers with equal
 * values (fresh LayerNorms all read one `blocks.0.norm1.weight`), stores Linear weights transposed
 * under anonymous names (`val_12`), folds BatchNormalization into the convolution before it, drops
 * all-zero biases and folds parameters into constants (a position-embedding lookup over static
 * positions). Left as is, the engine would show one module the sum of many gradients, another none,
 * and train anonymous constants. The export keeps enough metadata to undo most of it:
 * - value_info `pkg.torch.export.graph_signature.InputSpec.kind` = PARAMETER names the initializers
 *   that are PyTorch parameters (and `pkg.torch.onnx.original_node_name` their FX names);
 * - node `pkg.torch.onnx.fx_node` is the FX call the node came from, whose args name the parameters
 *   (`%p_blocks_0_norm2_weight`) the node read in PyTorch;
 * - value_info `pkg.onnxscript.optimizer.folded_from` lists what a folded constant was made from.
 *
 * This pass rewrites the decoded model before import: a merged initializer gets a copy per PyTorch
 * parameter (equal values, so exact), a transposed copy becomes the parameter again behind a
 * Transpose node (tied weights then share one parameter, as in PyTorch), BatchNormalization that
 * PyTorch ran in training mode runs so again, and initializers the signature does not list are not
 * trainable. What cannot be recovered (BN folded into a conv, dropped biases, parameters folded into
 * constants) becomes a note for the module's line. Models without this metadata pass through unchanged.
 */
import { AttributeProto, DataType, GraphProto, ModelProto, NodeProto, StringEntry, TensorProto } from './proto';
import { parsePythonStringList } from './modules';
import { isIntegerType } from './tensors';

export const EXPORT_NOTE_KINDS = ['merged', 'transposed', 'bn-folded', 'bn-fused-weight', 'folded', 'dropped', 'bn-inference', 'metadata-lost', 'eval-export', 'dropout-removed', 'traced-argument'] as const;

/** What an export did to a module's parameters. */
export interface ExportNote {
  /** Module the note belongs on (dotted path, '' = the model). */
  modulePath: string;
  kind: typeof EXPORT_NOTE_KINDS[number];
  /** PyTorch parameter names concerned. */
  parameters: string[];
  /** True when the engine undid the change, so the numbers shown are PyTorch's. */
  restored: boolean;
  message: string;
}

export interface IdentityResult {
  model: ModelProto;
  /** True when the model carries the dynamo exporter's metadata. */
  dynamo: boolean;
  /** A dynamo export whose node metadata was stripped (converted to an opset below 18): nodes have no module scopes. */
  stripped?: boolean;
  /** Initializers that are not PyTorch parameters (never trainable), with why. */
  constants: Map<string, string>;
  /** Initializers stored transposed (2-D) relative to the parameter they hold: transpose on load. */
  transposed: Set<string>;
  notes: ExportNote[];
}

const KIND = 'pkg.torch.export.graph_signature.InputSpec.kind';
/** `pkg.onnxscript.optimizer.folded_from` (onnxscript's optimizer; matched by suffix, the prefix has moved between releases). */
const FOLDED_FROM = /\.optimizer\.folded_from$/;
const FX_NODE = 'pkg.torch.onnx.fx_node';
const SCOPES = 'pkg.torch.onnx.name_scopes';
const CLASSES = 'pkg.torch.onnx.class_hierarchy';
const AVOID = 'export with torch.onnx.export(..., optimize=False) to keep every parameter';

function meta(entries: readonly StringEntry[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (const e of entries) m[e.key] = e.value;
  return m;
}

/** FX node key of a dotted name: what `%p_<key>` in fx_node metadata spells ('blocks.0.LayerNorm.weight' -> 'blocks_0_layernorm_weight'). */
function fxKey(dotted: string): string {
  return dotted.replace(/\./g, '_').toLowerCase();
}

function parentOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? '' : name.slice(0, i);
}

function leafOf(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** FX intermediate names (aten op results) that folded_from lists beside real parameters and buffers. */
const FX_INTERMEDIATE = /^(val|add|sub|rsub|mul|div|arange|unsqueeze|squeeze|expand|gather|slice|select|view|reshape|cat|transpose|permute|clone|to|type_as|ones|zeros|full|lt|gt|le|ge|eq|ne|where|index|embedding|cumsum|pow|sqrt|neg|scalar_tensor|masked_fill|triu|tril|abs|min|max|log|exp|sin|cos|matmul|mm|t|alias|detach|contiguous|empty|getitem|bmm|sum|mean|any|all|floor|ceil|clamp|_to_copy|lift_fresh_copy|bitwise_\w+|logical_\w+|full_like|zeros_like|ones_like|minimum|maximum|scalar_tensor_default|lifted_tensor|copy|fill|new_\w+|_unsafe_\w+|\w+_default)(_\d+)?$/;
/** Buffers that are not parameters (folded index tensors and running statistics). */
const BUFFER_NAME = /(_ids|running_mean|running_var|num_batches_tracked|inv_freq|mask|bias_mask)$/;

interface FxCall {
  target: string;
  /** Parameters the FX call read, as dotted names where they could be resolved. */
  params: string[];
  /** BatchNorm training flag when the call is a batch norm. */
  bnTraining?: boolean;
}

/**
 * The dotted name of an FX parameter reference (`blocks_0_norm2_weight`): a known name with that key,
 * else the node's deepest module scope whose key prefixes it plus the rest ('blocks.0.norm2' + 'weight').
 */
function resolveRef(key: string, known: Map<string, string>, scopes: string[]): string {
  const k = known.get(key);
  if (k) return k;
  for (let i = scopes.length - 1; i >= 0; i--) {
    const s = scopes[i];
    if (s === '') return key;
    const prefix = fxKey(s) + '_';
    if (key.startsWith(prefix)) return `${s}.${key.slice(prefix.length)}`;
  }
  return key;
}

function parseFx(text: string, known: Map<string, string>, scopes: string[]): FxCall {
  const target = /target=([\w.]+)/.exec(text)?.[1] ?? '';
  const args = text.slice(text.indexOf('args = ('));
  const params: string[] = [];
  const re = /%p_(\w+)/g;
  for (let m = re.exec(args); m; m = re.exec(args)) params.push(resolveRef(m[1], known, scopes));
  const call: FxCall = { target, params };
  if (/batch_norm/.test(target)) {
    if (/_no_training/.test(target)) call.bnTraining = false;
    else if (/_native_batch_norm_legit(_functional)?\.default/.test(target)) call.bnTraining = /^args = \((?:[^,]+, ){5}True/.test(args);
    else if (/aten\.batch_norm\.default/.test(target)) call.bnTraining = /^args = \((?:[^,]+, ){5}True/.test(args);
  }
  return call;
}

function isFloat(t: TensorProto): boolean {
  return t.dataType === DataType.FLOAT || t.dataType === DataType.DOUBLE || t.dataType === DataType.FLOAT16 || t.dataType === DataType.BFLOAT16;
}

function attribute(name: string, type: number, i: number, ints: number[]): AttributeProto {
  return { name, type, f: 0, i, s: null, t: null, g: null, floats: [], ints, strings: [], tensors: [], graphs: [], refAttrName: '', present: new Set([type === 2 ? 3 : 8]) };
}

function intAttribute(name: string, value: number): AttributeProto {
  return attribute(name, 2, value, []);
}

function intsAttribute(name: string, values: number[]): AttributeProto {
  return attribute(name, 7, 0, values);
}

/**
 * The TorchScript exporter (dynamo=False) in eval mode with constant folding (its defaults) multiplies each
 * BatchNorm into the convolution before it and stores the result under an anonymous name (`onnx::Conv_16`):
 * the BatchNorm is gone without a trace, so the run cannot use batch statistics. A Conv whose weight is such
 * an initializer is the sign; the weight stays trainable (it is the layer's) but is named as not PyTorch's.
 */
function legacyFoldedConvNotes(model: ModelProto): ExportNote[] {
  const g = model.graph;
  if (!g || !/^pytorch$/i.test(model.producerName)) return [];
  const inits = new Set(g.initializer.map((t) => t.name));
  const folded = g.node.filter((n) => n.opType === 'Conv' && /^onnx::Conv_\d+$/.test(n.input[1] ?? '') && inits.has(n.input[1]));
  if (folded.length === 0) return [];
  const AVOID_LEGACY = 'export with torch.onnx.export(..., training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False) (or dynamo=True, optimize=False) to keep them';
  const notes: ExportNote[] = folded.map((n) => {
    const modulePath = n.name.split('/').filter(Boolean).slice(0, -1).join('.');
    const anonymous = n.input.slice(1).filter((i) => inits.has(i) && /^onnx::/.test(i));
    return {
      modulePath, kind: 'bn-fused-weight', parameters: anonymous, restored: false,
      message: `this convolution's weights have no PyTorch name (${anonymous.join(', ')}): the exporter folded them in eval mode, most likely multiplying in the BatchNorm after it, so they are not PyTorch's values and their gradients are not PyTorch's; ${AVOID_LEGACY}`,
    };
  });
  notes.push({
    modulePath: '', kind: 'bn-folded', parameters: [], restored: false,
    message: `${folded.length} convolution${folded.length === 1 ? '' : 's'} read${folded.length === 1 ? 's' : ''} weights the exporter folded in eval mode (BatchNorm multiplied into the convolution, the TorchScript exporter's default): the BatchNorm cannot run with batch statistics, so the gradients shown are not PyTorch's train-mode gradients; ${AVOID_LEGACY}`,
  });
  return notes;
}

/**
 * An export made in eval mode (model.eval()): BatchNorm was traced as inference (`_no_training`) and each Dropout
 * became an identity (`aten.clone`, its rate gone; with optimize=True even that node is removed). The engine runs
 * BatchNorm with batch statistics in train mode all the same, but it cannot drop where the export kept no
 * Dropout: each Dropout the metadata still shows gets a warning, the model an informational note.
 * A Dropout with p=0 exported in train mode is an identity too: without a BatchNorm to tell the mode, the
 * Dropout gets an informational note that says both.
 */
function evalExportNotes(nodes: readonly NodeProto[], calls: readonly (FxCall | null)[]): ExportNote[] {
  const evalBn = calls.some((c) => c?.bnTraining === false);
  const dropouts = new Set<string>();
  for (const n of nodes) {
    const m = meta(n.metadataProps);
    const classes = parsePythonStringList(m[CLASSES] ?? '') ?? [];
    const scopes = parsePythonStringList(m[SCOPES] ?? '') ?? [];
    const at = classes.findIndex((c) => /^torch\.nn\.modules\.dropout\.\w*Dropout\w*$/.test(c));
    if (at >= 0 && n.opType !== 'Dropout' && /aten\.(clone|alias)/.test(classes[classes.length - 1] ?? '') && scopes[at] !== undefined) dropouts.add(scopes[at]);
  }
  if (!evalBn && dropouts.size === 0) return [];
  if (!evalBn) {
    return [...dropouts].map((d) => ({
      modulePath: d, kind: 'dropout-removed', parameters: [], restored: true,
      message: `this Dropout is an identity in the export: its p is 0, or the model was exported in eval mode (then PyTorch in train mode drops here and no run can); export after model.train() to keep a dropout that drops`,
    }));
  }
  const notes: ExportNote[] = [...dropouts].map((d) => ({
    modulePath: d, kind: 'dropout-removed', parameters: [], restored: false,
    message: `the model was exported in eval mode, which turned this Dropout into an identity (its rate is not in the export): no run drops here, where PyTorch in train mode would, so the gradients shown are eval-mode dropout's; export after model.train() to keep it`,
  }));
  notes.push({
    modulePath: '', kind: 'eval-export', parameters: [], restored: true,
    message: `the model was exported in eval mode (model.eval()): BatchNorm runs with batch statistics in train mode all the same, but Dropout layers the export left out cannot drop${dropouts.size ? ` (${[...dropouts].join(', ')})` : ''}; export after model.train() to keep them`,
  });
  return notes;
}

/** Undoes what the dynamo exporter's optimizer did to parameters, where the metadata allows; see the file comment. */
export function restoreParameterIdentity(model: ModelProto): IdentityResult {
  const result = restoreIdentity(model);
  const traced = model.graph ? tracedArgumentNotes(model.graph) : [];
  return traced.length === 0 ? result : { ...result, notes: [...result.notes, ...traced] };
}

/** Forward arguments of Hugging Face models whose default (0: every position) a traced graph input replaces. */
const LOGITS_TO_KEEP = new Set(['logits_to_keep', 'num_logits_to_keep']);

/**
 * transformers' `logits_to_keep` made a graph input: the TorchScript exporter turns every forward argument with a
 * default that follows the given ones into an input (torch.onnx's _decide_input_format), named `onnx::Gather_N`
 * unless the user names it, and the graph then takes the logits at the position that scalar selects, where
 * PyTorch's forward with its default computes every position. Nothing in the graph can undo that, so the loss and
 * every gradient differ from the model's. Found by name, or as an anonymous integer scalar input a Gather indexes
 * with (a scalar a user passed on purpose has the name they gave it).
 */
function tracedArgumentNotes(g: GraphProto): ExportNote[] {
  const initialized = new Set(g.initializer.map((t) => t.name));
  const gatherIndex = new Set(g.node.filter((n) => n.opType === 'Gather' && n.domain === '').map((n) => n.input[1]));
  const isIntScalar = (v: GraphProto['input'][number]) => v.type?.kind === 'tensor' && v.type.shape?.length === 0 && isIntegerType(v.type.elemType);
  return g.input
    .filter((v) => !initialized.has(v.name) && isIntScalar(v) && (LOGITS_TO_KEEP.has(v.name) || (v.name.startsWith('onnx::') && gatherIndex.has(v.name))))
    .map((v) => ({
      modulePath: '', kind: 'traced-argument' as const, parameters: [], restored: false,
      message: `graph input '${v.name}' is a forward argument with a default that the export turned into an input (transformers' logits_to_keep, whose default 0 means every position): this graph computes the logits at the position it selects, not at every position as PyTorch's forward does, so the loss and gradients shown are that graph's. Export with the inputs given positionally to a forward that takes only them, or with the dynamo exporter (torch 2.9+)`,
    }));
}

function restoreIdentity(model: ModelProto): IdentityResult {
  const g = model.graph;
  const none: IdentityResult = { model, dynamo: false, constants: new Map(), transposed: new Set(), notes: [] };
  if (!g) return none;
  const infos = new Map([...g.valueInfo, ...g.input].map((v) => [v.name, meta(v.metadataProps ?? [])] as [string, Record<string, string>]));
  const signed = [...infos.entries()].filter(([, m]) => m[KIND] !== undefined);
  const withMetadata = signed.length > 0 || g.node.some((n) => n.metadataProps.some((e) => e.key === FX_NODE));
  // A dynamo export converted to another opset (opset_version below 18) keeps folded_from but loses every
  // node's metadata and the graph signature: module names, classes and source lines are gone.
  const stripped = !withMetadata && /^pytorch$/i.test(model.producerName) && Number.parseInt(model.producerVersion, 10) >= 2 &&
    g.node.length > 0 && g.node.every((n) => n.metadataProps.length === 0) && [...infos.values()].some((m) => Object.keys(m).some((k) => FOLDED_FROM.test(k)));
  if (!withMetadata && !stripped) return { ...none, notes: legacyFoldedConvNotes(model) };
  const dynamo = true;

  const inits = new Map(g.initializer.map((t) => [t.name, t] as [string, TensorProto]));
  const isParameter = new Set(signed.filter(([, m]) => m[KIND] === 'PARAMETER').map(([n]) => n));
  const known = new Map<string, string>();
  for (const [name] of signed) known.set(fxKey(name), name);
  const foldedFrom = new Map<string, string[]>();
  for (const [name, m] of infos) {
    const key = Object.keys(m).find((k) => FOLDED_FROM.test(k));
    if (key === undefined) continue;
    const from = parsePythonStringList(m[key]) ?? [];
    foldedFrom.set(name, from);
    for (const f of from) if (f.includes('.')) known.set(fxKey(f), f);
  }

  const present = new Set<string>(isParameter);
  if (stripped) {
    // No signature: named initializers the optimizer did not make are taken as parameters (as in any other export).
    for (const t of g.initializer) if (isFloat(t) && !foldedFrom.has(t.name) && !FX_INTERMEDIATE.test(t.name)) isParameter.add(t.name);
    for (const name of isParameter) present.add(name);
  }
  const nodes: NodeProto[] = g.node.map((n) => ({ ...n, input: [...n.input], attribute: [...n.attribute] }));
  const initializers: TensorProto[] = [...g.initializer];
  const addedNodes: NodeProto[] = [];
  const notes: ExportNote[] = [];
  const transposed = new Set<string>();
  const referenced = new Set<string>();
  const fused: { bn: string; conv: string }[] = [];
  const merged = new Map<string, string[]>();

  // Each node against the parameters its FX call read.
  const calls = nodes.map((n) => {
    const m = meta(n.metadataProps);
    return m[FX_NODE] ? parseFx(m[FX_NODE], known, parsePythonStringList(m[SCOPES] ?? '') ?? []) : null;
  });
  nodes.forEach((n, i) => {
    const call = calls[i];
    if (!call) return;
    call.params.forEach((p) => referenced.add(p));
    const bnFused = call.bnTraining !== undefined && n.opType !== 'BatchNormalization';
    if (n.opType === 'BatchNormalization' && call.bnTraining === true && !n.attribute.some((a) => a.name === 'training_mode' && a.i === 1)) {
      // torch.onnx exports BatchNorm in inference form whatever mode the model was in; PyTorch computed batch statistics.
      n.attribute = [...n.attribute.filter((a) => a.name !== 'training_mode'), intAttribute('training_mode', 1)];
      const module = parentOf(call.params[0] ?? '');
      notes.push({ modulePath: module, kind: 'bn-inference', parameters: call.params, restored: true, message: `the export wrote this BatchNorm in inference form (running statistics); PyTorch ran it in training mode, so Gradient Lens runs it with batch statistics` });
    }
    n.input.forEach((name, slot) => {
      const t = inits.get(name);
      if (!t || !isFloat(t) || call.params.length === 0 || call.params.includes(name)) return;
      const fusedSlot = slot === 1 || (slot === 2 && leafOf(name) === 'bias' && parentOf(name) === parentOf(n.input[1]));
      if (bnFused && fusedSlot && /^(Conv|ConvTranspose|Gemm)$/.test(n.opType)) {
        // The optimizer multiplied the BatchNorm into this weight (and bias): the node keeps the BatchNorm's
        // metadata, the weight its name, not its values or its signature entry. Still the layer's parameter,
        // shown with a warning. (A bias the fusion invents, 'conv1.weight_bias', stays a constant.)
        fused.push({ bn: parentOf(call.params[0]), conv: name });
        isParameter.add(name);
        present.add(name);
        return;
      }
      if (!isParameter.has(name)) return;
      // A parameter read where PyTorch read another one with the same leaf name: the optimizer merged equal initializers.
      const same = call.params.filter((p) => leafOf(p) === leafOf(name));
      if (same.length !== 1) return;
      const own = same[0];
      if (!inits.has(own)) {
        initializers.push({ ...t, name: own });
        inits.set(own, initializers[initializers.length - 1]);
        present.add(own);
        isParameter.add(own);
      }
      n.input[slot] = own;
      merged.set(name, [...(merged.get(name) ?? [name]), own]);
    });
  });
  notes.push(...evalExportNotes(nodes, calls));
  for (const [name, all] of merged) {
    const unique = [...new Set(all)];
    for (const p of unique) {
      notes.push({ modulePath: parentOf(p), kind: 'merged', parameters: [p], restored: true, message: `the export merged ${p} with ${unique.filter((q) => q !== p).join(', ')} (equal values) into one initializer '${name}'; Gradient Lens splits it back, so ${p} has its own gradient` });
    }
  }

  // Anonymous initializers: a Linear weight stored transposed becomes the parameter again (behind a Transpose);
  // every other one is a constant, and the parameters folded into it have no gradient.
  const folded = new Map<string, string>();
  const constants = new Map<string, string>();
  for (const t of [...initializers]) {
    if (!isFloat(t) || isParameter.has(t.name)) continue;
    const from = foldedFrom.get(t.name) ?? [];
    const consumers = nodes.map((n, i) => ({ n, i, slot: n.input.indexOf(t.name) })).filter((c) => c.slot >= 0);
    const source = from.length === 1 ? from[0] : undefined;
    const sourceInit = source !== undefined ? inits.get(source) : undefined;
    // Without fx_node metadata (a stripped export), a single-source fold of a '.weight' read as MatMul's B is still a transpose.
    const linearUse = consumers.length > 0 && consumers.every((c) => (c.n.opType === 'MatMul' && c.slot === 1) &&
      (stripped ? /\.weight$/.test(source ?? '') : /aten\.linear|aten\.t\b|aten\.mm|aten\.addmm|aten\.matmul/.test(calls[c.i]?.target ?? '')));
    const transposable = source !== undefined && !BUFFER_NAME.test(source) && t.dims.length === 2 &&
      (sourceInit ? sourceInit.dims.length === 2 && sourceInit.dims[0] === t.dims[1] && sourceInit.dims[1] === t.dims[0] && isParameter.has(source) : linearUse);
    if (transposable) {
      if (!sourceInit) {
        initializers.push({ ...t, name: source });
        inits.set(source, initializers[initializers.length - 1]);
        transposed.add(source);
        isParameter.add(source);
        present.add(source);
      }
      const at = initializers.indexOf(t);
      initializers.splice(at, 1);
      inits.delete(t.name);
      const consumerMeta = consumers[0]?.n.metadataProps ?? [];
      addedNodes.push({ name: `restored_transpose_${t.name}`, opType: 'Transpose', domain: '', input: [source], output: [t.name], attribute: [intsAttribute('perm', [1, 0])], docString: '', metadataProps: consumerMeta });
      notes.push({ modulePath: parentOf(source), kind: 'transposed', parameters: [source], restored: true, message: `the export stored ${source} transposed as '${t.name}'${sourceInit ? ' (a second copy of a tied weight)' : ''}; Gradient Lens maps it back to ${source}` });
      continue;
    }
    const params = from.filter((f) => !FX_INTERMEDIATE.test(leafOf(f)) && !BUFFER_NAME.test(f) && !inits.has(f));
    for (const p of params) folded.set(p, t.name);
    constants.set(t.name, params.length
      ? `a constant the exporter folded from ${params.join(', ')}: not a PyTorch parameter`
      : 'an exporter constant: the export\'s graph signature does not list it as a PyTorch parameter');
  }

  // Parameters PyTorch had that the export lost.
  for (const bn of new Set(fused.map((f) => f.bn))) {
    const convs = fused.filter((f) => f.bn === bn).map((f) => f.conv);
    const bnParams = [...referenced].filter((p) => parentOf(p) === bn && !present.has(p));
    notes.push({ modulePath: bn, kind: 'bn-folded', parameters: bnParams, restored: false, message: `the export folded this BatchNorm into ${parentOf(convs[0])} (optimize=True): ${bnParams.join(', ') || 'its parameters'} have no gradient here, and the folded model uses running statistics instead of batch statistics, so gradients differ from PyTorch's; ${AVOID}` });
    notes.push({ modulePath: parentOf(convs[0]), kind: 'bn-fused-weight', parameters: convs, restored: false, message: `${convs.join(' and ')} hold the export's fusion of this layer with the BatchNorm ${bn} (optimize=True), not PyTorch's values: their gradients are not PyTorch's; ${AVOID}` });
    bnParams.forEach((p) => present.add(p));
  }
  if (fused.length) {
    notes.push({ modulePath: '', kind: 'bn-folded', parameters: [], restored: false, message: `the export folded ${new Set(fused.map((f) => f.bn)).size} BatchNorm layer${new Set(fused.map((f) => f.bn)).size === 1 ? '' : 's'} into convolutions (optimize=True), so this model normalizes with running statistics where PyTorch used batch statistics: every gradient shown differs from PyTorch's; ${AVOID}` });
  }
  const byModule = new Map<string, { kind: 'folded' | 'dropped'; params: string[]; into?: string }>();
  for (const [p, into] of folded) {
    if (present.has(p)) continue;
    present.add(p);
    const key = `folded:${parentOf(p)}:${into}`;
    const e = byModule.get(key) ?? { kind: 'folded', params: [], into };
    e.params.push(p);
    byModule.set(key, e);
  }
  for (const p of referenced) {
    if (present.has(p) || inits.has(p)) continue;
    const key = `dropped:${parentOf(p)}`;
    const e = byModule.get(key) ?? { kind: 'dropped', params: [] };
    e.params.push(p);
    byModule.set(key, e);
  }
  for (const [key, e] of byModule) {
    const modulePath = key.split(':')[1];
    notes.push(e.kind === 'folded'
      ? { modulePath, kind: 'folded', parameters: e.params, restored: false, message: `the export folded ${e.params.join(', ')} into the constant '${e.into}': no gradient or parameter count for it here; ${AVOID}` }
      : { modulePath, kind: 'dropped', parameters: e.params, restored: false, message: `the export dropped ${e.params.join(', ')} (an all-zero bias the optimizer removes): no gradient or parameter count for it here; ${AVOID}` });
  }

  if (stripped) {
    // Equal parameters merged by the optimizer cannot be split without the metadata: say which initializers several layers read.
    for (const name of isParameter) {
      const readers = nodes.filter((n) => n.input.includes(name));
      if (readers.length < 2) continue;
      notes.push({ modulePath: parentOf(name), kind: 'merged', parameters: [name], restored: false, message: `${name} is read by ${readers.length} ${[...new Set(readers.map((n) => n.opType))].join('/')} nodes: the export probably merged equal parameters of several layers into it (its gradient is their sum, their own are not shown), or the model shares it; ${AVOID}` });
    }
    notes.push({ modulePath: '', kind: 'metadata-lost', parameters: [], restored: false, message: `this export lost PyTorch's node metadata (the dynamo exporter converts to an opset_version below 18 and drops it): modules are known only from parameter names, without class (the source names what it constructs) or source line, a layer's output shape and order are those of the ops that read its parameters (a container's, its last layer's), and parameters the optimizer merged cannot be told apart; export without opset_version (or with 18 or higher) and optimize=False` });
  }
  // Each restored Transpose just before the first node that reads it: the graph's order is the forward order the
  // panel shows (a module's first op), and a weight's Transpose belongs with its layer, not at the graph's start.
  const ordered: NodeProto[] = [];
  const pending = new Map(addedNodes.map((n) => [n.output[0], n]));
  for (const n of nodes) {
    for (const i of n.input) {
      const t = pending.get(i);
      if (t) {
        ordered.push(t);
        pending.delete(i);
      }
    }
    ordered.push(n);
  }
  const graph: GraphProto = { ...g, node: [...pending.values(), ...ordered], initializer: initializers };
  return { model: { ...model, graph }, dynamo, stripped, constants, transposed, notes };
}
