//! `gpu-nn bench --scaling`: time per step of seed001's network against batch size and
//! against width, on both backends, as a table and a picture.

use super::run_case;
use crate::atomic_file::write_atomic;
use crate::commands::args::BenchArgs;
use crate::core::config::{Config, preset_json};
use crate::core::run_data::RunData;
use crate::core::{Plan, Settings};
use crate::gpu::Gpu;
use anyhow::Result;
use serde::Serialize;
use serde_json::json;

pub fn run(args: &BenchArgs, env: &Settings) -> Result<()> {
    let plan = Plan::load(args.cfg.resolve_over(&[preset_json("seed001")?])?, &env.data, false)?;
    let adapter = plan.config().backend.adapter.clone().or_else(|| env.adapter.clone());
    let device = if args.cpu_only { "no GPU".to_string() } else { Gpu::new(adapter.as_deref(), true)?.describe() };
    let rows = run_scaling(plan.data(), env, args.steps, args.repeats, adapter.as_deref(), !args.cpu_only)?;
    let dir = args.out.clone().unwrap_or_else(|| ".".into());
    write_scaling(&dir, &rows, &device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{:<6} {:>6} {:>6} {:>12} {:>12}", "sweep", "batch", "width", "cpu ms/step", "gpu ms/step");
        for r in &rows {
            let g = r.gpu_ms_per_step.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
            println!("{:<6} {:>6} {:>6} {:>12.3} {:>12}", r.sweep, r.batch, r.width, r.cpu_ms_per_step, g);
        }
        println!("wrote {}", dir.join("scaling.png").display());
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    /// "batch" or "width": which sweep the row belongs to.
    pub sweep: String,
    pub batch: usize,
    pub width: usize,
    pub cpu_ms_per_step: f64,
    pub gpu_ms_per_step: Option<f64>,
    pub cpu_samples_per_sec: f64,
    pub gpu_samples_per_sec: Option<f64>,
}

/// seed001's network and optimiser with hidden widths `w`, `w/2` at `batch`.
fn scaling_config(batch: usize, width: usize) -> Result<Config> {
    Config::from_layers(&[
        preset_json("seed001")?,
        json!({"model": {"layers": [784, width, width / 2, 10]}, "training": {"batch_size": batch}}),
    ])
}

pub const SCALING_BATCHES: [usize; 6] = [16, 32, 64, 128, 256, 512];
pub const SCALING_WIDTHS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// ms per step on both backends for seed001's network over batch sizes (width 128) and widths
/// (batch 64).
pub fn run_scaling(data: &RunData, env: &Settings, steps: usize, repeats: usize, adapter: Option<&str>, with_gpu: bool) -> Result<Vec<ScalingRow>> {
    let mut cells: Vec<(&str, usize, usize)> = SCALING_BATCHES.iter().map(|&b| ("batch", b, 128)).collect();
    cells.extend(SCALING_WIDTHS.iter().map(|&w| ("width", 64, w)));
    let mut rows = Vec::new();
    for (sweep, batch, width) in cells {
        let mut cfg = scaling_config(batch, width)?;
        cfg.backend.adapter = adapter.map(str::to_string);
        let r = run_case(sweep, &Plan::new(cfg, data.clone())?, env, steps, repeats, with_gpu)?;
        rows.push(ScalingRow {
            sweep: sweep.into(),
            batch,
            width,
            cpu_ms_per_step: r.cpu().ms_per_step,
            gpu_ms_per_step: r.gpu().map(|g| g.ms_per_step),
            cpu_samples_per_sec: r.cpu().samples_per_sec,
            gpu_samples_per_sec: r.gpu().map(|g| g.samples_per_sec),
        });
    }
    Ok(rows)
}

/// Two panels, ms per step against batch size and against width, CPU and GPU, log-log axes.
pub fn scaling_svg(rows: &[ScalingRow], device: &str) -> Result<String> {
    use crate::report::plots::{font, plot_err, register_font, render_svg};
    use plotters::prelude::*;
    register_font();
    render_svg((1200, 520), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(&format!("seed001 network: time per training step (CPU f32 vs {device})"), font(19.0)).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(600);
        for (area, sweep, x_desc) in [(&left, "batch", "batch size (width 128-64)"), (&right, "width", "first hidden width w (784-w-w/2-10, batch 64)")] {
            let pts: Vec<&ScalingRow> = rows.iter().filter(|r| r.sweep == sweep).collect();
            // x on a log2 axis, labelled with the sizes themselves
            let x = |r: &ScalingRow| (if sweep == "batch" { r.batch } else { r.width } as f64).log2();
            let ys: Vec<f64> = pts.iter().flat_map(|r| [Some(r.cpu_ms_per_step), r.gpu_ms_per_step]).flatten().collect();
            let (lo, hi) = ys.iter().fold((f64::MAX, 0.0f64), |(l, h), &y| (l.min(y), h.max(y)));
            let (x0, x1) = (x(pts[0]) - 0.3, x(pts[pts.len() - 1]) + 0.3);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("against {sweep}"), font(20.0))
                .margin(14)
                .x_label_area_size(46)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, (lo * 0.7..hi * 1.4).log_scale())
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("ms per step")
                .x_labels(2 * pts.len() + 1)
                .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{}", 2f64.powf(v.round())) } else { String::new() })
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(font(14.0))
                .axis_desc_style(font(16.0))
                .draw()
                .map_err(plot_err)?;
            let series: [(&str, RGBColor, Vec<(f64, f64)>); 2] = [
                ("cpu f32", RGBColor(31, 119, 180), pts.iter().map(|r| (x(r), r.cpu_ms_per_step)).collect()),
                ("gpu", RGBColor(214, 39, 40), pts.iter().filter_map(|r| r.gpu_ms_per_step.map(|g| (x(r), g))).collect()),
            ];
            for (name, color, p) in series {
                if p.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, color.filled()))).map_err(plot_err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(font(14.0))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(())
    })
}

/// Writes scaling.csv, scaling.svg and scaling.png into `dir`.
pub fn write_scaling(dir: &std::path::Path, rows: &[ScalingRow], device: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from("sweep,batch,width,cpu_ms_per_step,gpu_ms_per_step,cpu_samples_per_sec,gpu_samples_per_sec\n");
    let o = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for r in rows {
        csv += &format!(
            "{},{},{},{},{},{},{}\n",
            r.sweep, r.batch, r.width, r.cpu_ms_per_step, o(r.gpu_ms_per_step), r.cpu_samples_per_sec, o(r.gpu_samples_per_sec)
        );
    }
    write_atomic(&dir.join("scaling.csv"), csv.as_bytes())?;
    let svg = scaling_svg(rows, device)?;
    write_atomic(&dir.join("scaling.svg"), svg.as_bytes())?;
    write_atomic(&dir.join("scaling.png"), &crate::report::plots::svg_to_png(&svg)?)?;
    Ok(())
}
