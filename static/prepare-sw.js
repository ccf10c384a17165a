// The /prepare page's service worker (served as /prepare/sw.js, scope /prepare): it keeps
// the page and what it needs, so that the household code this phone kept (localStorage,
// static/prepare.js) opens again with no network. Network first: online, the page is
// always the server's newest; only when the server cannot be reached is the kept copy
// used. It keeps the empty form page only, never an answer with someone's code in it.
"use strict";
var CACHE = "shelter-prepare-1";
var PAGE = "/prepare";
var ASSETS = ["/static/shelter.css", "/static/prepare.js", "/static/autokana.js",
              "/static/icon.svg"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(ASSETS.concat([PAGE]));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf("shelter-prepare-") === 0 && name !== CACHE;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

function networkFirst(request, key) {
  return fetch(request).then(function (response) {
    if (response.ok && response.type === "basic" && !response.redirected) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { return cache.put(key, copy); });
    }
    return response;
  }).catch(function () {
    return caches.match(key, { ignoreVary: true, ignoreSearch: true }).then(function (kept) {
      return kept || Response.error();
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(networkFirst(request, PAGE));
  } else if (ASSETS.indexOf(url.pathname) >= 0) {
    event.respondWith(networkFirst(request, url.pathname));
  }
});
