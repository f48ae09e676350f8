//! Renders an HTML report in headless Chromium, as a user's browser would,
//! and reports what the page did: script errors and, per plot, the drawn
//! geometry of its lines.
//!
//! The report has no script of its own, so the check is added to a copy of
//! it: an error collector first in `<head>`, and at the end of `<body>` a
//! script that measures every `svg.plot` (layout has happened by then:
//! `getBBox` forces it) and writes the result into the DOM as JSON, which
//! `--dump-dom` returns. Chromium's own console log (stderr) is checked for
//! uncaught errors too.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::require_tool;

/// Installed first in `<head>`, so it sees every later error.
const COLLECT_ERRORS: &str = "<script>window.__errors=[];\
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e.type))},true);\
</script>";

/// Measures the plots and writes `{errors, plots}` into `<pre id="soakd-check">`.
const MEASURE: &str = r#"<script>(function(){
var plots=Array.prototype.map.call(document.querySelectorAll('svg.plot'),function(svg){
 var vb=svg.viewBox.baseVal, r=svg.getBoundingClientRect();
 var lines=Array.prototype.map.call(svg.querySelectorAll('polyline'),function(l){
  var b=l.getBBox();
  return {class:l.getAttribute('class'),points:l.points.numberOfItems,x:b.x,y:b.y,width:b.width,height:b.height};
 });
 return {figure:svg.getAttribute('data-figure'),width:r.width,height:r.height,view:[vb.width,vb.height],lines:lines};
});
var out=document.createElement('pre');out.id='soakd-check';
out.textContent=JSON.stringify({errors:window.__errors,plots:plots});
document.body.appendChild(out);})();</script>"#;

/// What the rendered page reported.
#[derive(Debug)]
pub struct PageCheck {
    /// Script errors caught on the page, and uncaught ones Chromium logged.
    pub errors: Vec<String>,
    /// Per `svg.plot`: `figure`, `width`, `height`, `view` and `lines`
    /// (`class`, `points`, `x`, `y`, `width`, `height` of each polyline).
    pub plots: Vec<Value>,
}

/// Renders `html` (a report file) in headless Chromium and returns the check.
/// Panics with what to install when Chromium is missing.
pub fn render(html: &Path) -> PageCheck {
    let chromium = require_tool("chromium", "apt-get install -y chromium (scripts/setup.sh)");
    let page = fs::read_to_string(html).unwrap_or_else(|e| panic!("{}: {e}", html.display()));
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("page.html");
    let checked = page
        .replacen("<head>", &format!("<head>{COLLECT_ERRORS}"), 1)
        .replacen("</body>", &format!("{MEASURE}</body>"), 1);
    assert!(
        checked.contains(COLLECT_ERRORS) && checked.contains("soakd-check"),
        "{}: no <head> or </body> to add the check to",
        html.display()
    );
    fs::write(&copy, checked).expect("writing the checked copy");
    let out = Command::new(chromium)
        .args([
            "--headless",
            // Root (CI containers) cannot use Chromium's sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", copy.display()))
        .output()
        .expect("running chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{log}",
        out.status
    );
    let json = dom
        .split("<pre id=\"soakd-check\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the check did not run (a script error before it?):\n{log}"));
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let mut errors: Vec<String> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e.to_string())
        .collect();
    errors.extend(
        log.lines()
            .filter(|l| l.contains(":CONSOLE") && l.contains("Uncaught"))
            .map(str::to_string),
    );
    PageCheck {
        errors,
        plots: v["plots"].as_array().cloned().unwrap_or_default(),
    }
}

/// Asserts the page rendered without script errors and drew every plot it
/// names: each plot laid out with a size, with at least one data line of two
/// or more points drawn with a width, and every line inside its plot's view. Returns the figures drawn, in page order.
pub fn assert_draws_every_plot(html: &Path) -> Vec<String> {
    let check = render(html);
    assert!(
        check.errors.is_empty(),
        "{}: script errors: {:?}",
        html.display(),
        check.errors
    );
    assert!(!check.plots.is_empty(), "{}: no plot", html.display());
    let mut figures = Vec::new();
    for p in &check.plots {
        let figure = p["figure"].as_str().unwrap_or("?").to_string();
        let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        assert!(
            num(&p["width"]) > 0.0 && num(&p["height"]) > 0.0,
            "{figure}: not laid out: {p}"
        );
        let (vw, vh) = (num(&p["view"][0]), num(&p["view"][1]));
        let lines = p["lines"].as_array().expect("lines");
        let drawn = lines
            .iter()
            .filter(|l| l["class"] == "data" && l["points"].as_u64() >= Some(2))
            .filter(|l| num(&l["width"]) > 0.0)
            .count();
        assert!(drawn > 0, "{figure}: no data line drawn: {p}");
        for l in lines {
            let (x, y, w, h) = (
                num(&l["x"]),
                num(&l["y"]),
                num(&l["width"]),
                num(&l["height"]),
            );
            assert!(
                x >= 0.0 && y >= 0.0 && x + w <= vw + 0.5 && y + h <= vh + 0.5,
                "{figure}: a line leaves the plot: {l}"
            );
        }
        figures.push(figure);
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("p.html");
        fs::write(
            &p,
            format!("<!doctype html><html><head></head><body>{body}</body></html>"),
        )
        .unwrap();
        p
    }

    /// The check sees what it is there to see: a script error, and a plot
    /// whose line is drawn outside it.
    #[test]
    fn the_check_catches_errors_and_stray_lines() {
        let dir = tempfile::tempdir().unwrap();
        let plot = "<svg class=\"plot\" data-figure=\"f\" viewBox=\"0 0 100 50\" width=\"100\" height=\"50\">\
                    <polyline class=\"data\" points=\"0,0 90,40\"/></svg>";
        let c = render(&page(
            dir.path(),
            &format!("{plot}<script>noSuchFunction()</script>"),
        ));
        // Seen twice: by the page's collector and in Chromium's console log.
        assert_eq!(c.errors.len(), 2, "{:?}", c.errors);
        assert!(
            c.errors.iter().all(|e| e.contains("noSuchFunction")),
            "{:?}",
            c.errors
        );
        assert_eq!(c.plots.len(), 1);
        assert_eq!(assert_draws_every_plot(&page(dir.path(), plot)), ["f"]);
        let stray = plot.replace("90,40", "190,40");
        let caught =
            std::panic::catch_unwind(|| assert_draws_every_plot(&page(dir.path(), &stray)));
        assert!(caught.is_err(), "a line outside the plot passed");
    }
}
