//! `timeline.svg`: redundancy and the repair backlog over a run, drawn
//! from the same samples as `timeline.csv`.

use plotters::prelude::*;

use crate::report::Sample;

/// Pixels.
const WIDTH: u32 = 960;
/// Pixels per panel.
const PANEL_HEIGHT: u32 = 320;

/// The SVG text: stripes by redundancy (top) and contracts lost, queued
/// and under an order (bottom), one point per epoch.
pub fn timeline_svg(title: &str, timeline: &[Sample]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 2 * PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        let (top, bottom) = root.split_vertically(PANEL_HEIGHT);
        let last = timeline.last().map_or(1, |sample| sample.epoch.max(1));
        panel(
            &top,
            &format!("{title}: stripes by fragments answering"),
            last,
            timeline,
            &[
                ("whole (k+m)", &GREEN, |s| s.stripes_whole),
                ("degraded (k..k+m-1)", &BLUE, |s| s.stripes_degraded),
                ("unavailable (< k answering)", &MAGENTA, |s| s.stripes_unavailable),
                ("lost (< k kept)", &RED, |s| s.stripes_lost),
            ],
        )?;
        panel(
            &bottom,
            "repair backlog: contracts",
            last,
            timeline,
            &[
                ("lost on the ledger", &RED, |s| s.contracts_lost),
                ("queued for an order", &MAGENTA, |s| s.repair_queued),
                ("under an open order", &BLUE, |s| s.repair_orders_open),
                ("nodes gone", &BLACK, |s| s.nodes_gone),
            ],
        )?;
        root.present().map_err(|error| error.to_string())?;
    }
    Ok(svg)
}

/// A series: its legend, colour and value.
type Series<'a> = (&'a str, &'a RGBColor, fn(&Sample) -> u64);

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    last_epoch: u64,
    timeline: &[Sample],
    series: &[Series<'_>],
) -> Result<(), String> {
    let top = timeline.iter().flat_map(|sample| series.iter().map(move |(_, _, value)| value(sample))).max();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0..last_epoch, 0..top.unwrap_or(0).max(1) + 1)
        .map_err(|error| error.to_string())?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(|error| error.to_string())?;
    for &(name, colour, value) in series {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(timeline.iter().map(|sample| (sample.epoch, value(sample))), colour))
            .map_err(|error| error.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_and_its_legend() {
        let timeline: Vec<Sample> = (0..10)
            .map(|epoch| Sample { epoch, stripes_whole: 10 - epoch, stripes_lost: epoch / 3, ..Sample::default() })
            .collect();
        let svg = timeline_svg("test", &timeline).expect("drawn");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        for legend in ["whole (k+m)", "lost (&lt; k kept)", "queued for an order", "nodes gone"] {
            assert!(svg.contains(legend), "missing {legend}");
        }
        assert!(svg.contains("<polyline"), "no lines drawn");
    }
}
