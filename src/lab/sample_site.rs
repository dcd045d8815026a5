//! The small site the lab's origin serves, written to a scratch directory.

use std::path::Path;

const FILES: &[(&str, &str)] = &[
    (
        "index.html",
        "<!doctype html>\n<html><head><title>edgecache lab</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\n\
         <body><h1>Served through edgecache</h1>\
         <script src=\"/assets/app.js\"></script></body></html>\n",
    ),
    (
        "assets/style.css",
        "body { font-family: sans-serif; margin: 2em; }\n",
    ),
    ("assets/app.js", "console.log('hello from the edge');\n"),
    ("api/status.json", "{\"status\": \"ok\"}\n"),
    (
        "news/today.html",
        "<p>Today's news: the origin is up.</p>\n",
    ),
    (
        "_headers",
        "# Cache rules for the lab's sample site.\n\
         /assets/*\n  Cache-Control: public, max-age=3600\n  Surrogate-Key: assets\n\
         /api/*\n  Cache-Control: public, max-age=5, must-revalidate\n  Surrogate-Key: api\n\
         /news/*\n  Cache-Control: public, max-age=10, stale-while-revalidate=30, stale-if-error=600\n  Surrogate-Key: news\n\
         /index.html\n  Cache-Control: public, max-age=30\n",
    ),
];

/// Writes the sample site under `root`.
pub fn write(root: &Path) -> std::io::Result<()> {
    for (rel, contents) in FILES {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}
