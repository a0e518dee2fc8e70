// The WebGPU adapter: found, named and shown, so the user knows what computes (a real GPU, or
// SwiftShader on the CPU), or why there is none and the page trains on the CPU instead.

import { el, elt, errorText, fmtBytes, fmtInt, gpunn, plain } from './common.js';

export function showAdapter(info, reason) {
  el.adapter.replaceChildren();
  if (!info) {
    el.adapter.dataset.webgpu = 'false';
    el.adapter.append(elt('p', { class: 'no-webgpu' },
      `WebGPU is not available here (${reason}); training on the CPU (WebAssembly).`));
    return;
  }
  el.adapter.dataset.webgpu = 'true';
  const dl = elt('dl');
  const add = (k, v) => dl.append(elt('dt', {}, k), elt('dd', {}, v));
  add('adapter', info.name || '(no name given)');
  add('backend', String(info.backend ?? '—'));
  add('device type', String(info.device_type ?? '—'));
  const lim = info.limits || {};
  const limits = [
    ['max buffer', 'max_buffer_size', fmtBytes],
    ['max storage binding', 'max_storage_buffer_binding_size', fmtBytes],
    ['workgroup storage', 'max_compute_workgroup_storage_size', fmtBytes],
    ['invocations / workgroup', 'max_compute_invocations_per_workgroup', fmtInt],
    ['workgroups / dimension', 'max_compute_workgroups_per_dimension', fmtInt],
  ];
  for (const [label, key, f] of limits) if (lim[key] !== undefined && lim[key] !== null) add(label, f(lim[key]));
  el.adapter.append(dl);
}

// Why navigator.gpu gave nothing, in words a user can act on.
function noWebgpuReason() {
  if (!window.isSecureContext) return 'the page is not a secure context: open it on http://127.0.0.1 or https';
  if (!('gpu' in navigator)) return 'this browser has no navigator.gpu: WebGPU is missing or switched off';
  return 'navigator.gpu found no adapter';
}

// Asks the module for an adapter, fills gpunn.adapter / gpunn.webgpuReason, shows the answer
// and offers the engines that exist.
export async function findAdapter() {
  try {
    gpunn.adapter = plain(await gpunn.module.webgpu_adapter());
  } catch (e) {
    gpunn.adapter = null;
    gpunn.webgpuReason = `requesting an adapter failed: ${errorText(e)}`;
  }
  if (!gpunn.adapter && !gpunn.webgpuReason) gpunn.webgpuReason = noWebgpuReason();
  // wgpu leaves the name empty in the browser; the browser's own adapter info says more
  // (vendor and architecture, e.g. "google swiftshader"; the description may be withheld)
  if (gpunn.adapter && !gpunn.adapter.name) {
    try {
      const a = await navigator.gpu.requestAdapter();
      const i = a && a.info;
      if (i) gpunn.adapter.name = i.description || [i.vendor, i.architecture, i.device].filter(Boolean).join(' ');
    } catch { /* the name stays empty */ }
  }
  showAdapter(gpunn.adapter, gpunn.webgpuReason);
  if (gpunn.adapter) {
    el.engine.value = 'webgpu';
  } else {
    el.engine.querySelector('option[value="webgpu"]').disabled = true;
    el.engine.value = 'cpu';
  }
}
