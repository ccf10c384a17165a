"""The thin layer HTTP arrives at: what every view shares (base, inputs, i18n), and the
blueprints of each role (web/node for a shelter, web/hq for HQ). Views read the request,
call the domain, and render."""
