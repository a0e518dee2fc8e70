// gpu-nn in the browser: the page's entry point, start-up only. No framework and no build step:
// the parts are ES modules in js/, loaded by the browser itself.
//
//   js/common.js     the page's elements, window.gpunn, formatting, status line, session queue
//   js/device.js     the WebGPU adapter (or why there is none)
//   js/training.js   presets and form, MNIST fetch, the training loop, the model download
//   js/curves.js     loss and accuracy curves on a canvas (the training page's and the dashboard's)
//   js/confusion.js  the confusion matrix heat-map table (both too)
//   js/drawing.js    drawing a digit and classifying it
//   js/parity.js     the engine against the f64 reference
//   js/runs.js       the dashboard of `gpu-nn serve --runs DIR` (hidden without it)
//
// The Rust side lives in pkg/gpu_nn.js (wasm-bindgen --target web). State is exposed in the DOM
// (data-* attributes) and in window.gpunn so that web/test/browser-check.mjs and
// web/test/dashboard-check.mjs can drive the page like a person would.

import { errorText, gpunn, reportUncaughtErrors, setBusy, setStatus } from './js/common.js';
import { findAdapter, showAdapter } from './js/device.js';
import { initDrawing } from './js/drawing.js';
import { initParity } from './js/parity.js';
import { startRuns } from './js/runs.js';
import { initTraining, offerPresets } from './js/training.js';

// Load the module dynamically, so a missing pkg/ gives a message, not a blank page; then find
// the adapter, list the presets, wire the buttons.
async function main() {
  reportUncaughtErrors();
  initDrawing();
  initTraining();
  initParity();
  // The dashboard needs no WebAssembly: it starts at once and lives on its own.
  startRuns();

  setStatus('loading', 'loading the WebAssembly module…');
  try {
    gpunn.module = await import('./pkg/gpu_nn.js');
    await gpunn.module.default();
  } catch (e) {
    setStatus('error', `could not load the WebAssembly module pkg/gpu_nn.js: ${errorText(e)} ` +
      '(build it with wasm-bindgen --target web into web/pkg/, and open the page over http, e.g. gpu-nn serve)');
    showAdapter(null, 'the module did not load');
    return;
  }

  setStatus('loading', 'looking for a WebGPU adapter…');
  await findAdapter();

  if (!offerPresets()) return;

  setBusy(false);
  setStatus('idle', gpunn.adapter
    ? `ready: WebGPU on ${gpunn.adapter.name || 'an unnamed adapter'}; pick a preset and press Train`
    : 'ready: training on the CPU (WebAssembly); pick a preset and press Train');
}

main();
