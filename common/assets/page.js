/* page.js - the login page's device flow, as a progressive enhancement of
 * the template's #device block (common/page.c): without this script its
 * form posts to the gate, which answers with a page that refreshes itself.
 *
 * With it: the form's submit starts the flow by fetch() (POST data-start,
 * JSON), the QR code, the link for a signing app on this computer and the
 * code are shown in the block, and the page polls the gate (GET json.poll,
 * every 2 s, until json.expires): "pending" goes on, "ok" goes to the page
 * asked for, an error goes to this login page with ?error=<reason>, which
 * says what happened.  The words are the server's: data-* attributes of
 * the block or of its status line (data-waiting, data-qr-alt,
 * data-link-text, data-code-label, data-expired), with the block's heading
 * when one is missing.  No framework, no inline
 * code, no eval: the page's Content-Security-Policy allows none. */
(function () {
    'use strict';

    var POLL_MS = 2000;
    var box = document.getElementById('device');

    if (!box || !window.fetch || !window.JSON) {
        return;
    }
    var form = box.querySelector('form');
    var status = box.querySelector('p.status');
    var button = form ? form.querySelector('button, [type="submit"]') : null;
    var heading = box.querySelector('h2, h3');
    var flowBox = null;
    var timer = 0;

    if (!form || !status) {
        return;
    }

    /* a data-* attribute of the block, or of its status line */
    function attr(name, fallback) {
        var v = box.getAttribute(name);
        if (v === null || v === '') {
            v = status.getAttribute(name);
        }
        return v !== null && v !== '' ? v : fallback;
    }

    function headingText() {
        return heading ? heading.textContent.replace(/\s+/g, ' ').trim() : '';
    }

    /* a path of this site only ("/x", never "//host" or "/\host"), else "/" */
    function localPath(p) {
        if (typeof p === 'string' && p.charAt(0) === '/' &&
            p.charAt(1) !== '/' && p.charAt(1) !== '\\' && !/[\u0000-\u001f]/.test(p)) {
            return p;
        }
        return '';
    }

    function returnTo() {
        var hidden = form.querySelector('input[name="return_to"]');
        return localPath(attr('data-return', hidden ? hidden.value : '')) || '';
    }

    function say(text) {
        status.textContent = text || '';
    }

    /* this login page again, telling why (the page is served at P/login) */
    function failWith(reason) {
        var r = String(reason || 'failed').replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 64);
        var url = location.pathname + '?error=' + encodeURIComponent(r || 'failed');
        var ret = returnTo();
        if (ret) {
            url += '&return_to=' + encodeURIComponent(ret);
        }
        stop();
        location.assign(url);
    }

    function done(json) {
        stop();
        location.assign(localPath(json && json.return_to) || returnTo() || '/');
    }

    function stop() {
        if (timer) {
            clearTimeout(timer);
            timer = 0;
        }
    }

    /* the flow's place in the block: QR code, code, link */
    function show(json) {
        var img, code, label, p, a;

        if (flowBox && flowBox.parentNode) {
            flowBox.parentNode.removeChild(flowBox);
        }
        flowBox = document.createElement('div');
        flowBox.className = 'flow';
        flowBox.setAttribute('tabindex', '-1');

        if (typeof json.qr === 'string' && /^data:image\/(svg\+xml|png|gif);base64,/.test(json.qr)) {
            img = document.createElement('img');
            img.className = 'qr';
            img.src = json.qr;
            img.alt = attr('data-qr-alt', headingText());
            img.width = 240;
            img.height = 240;
            flowBox.appendChild(img);
        }
        if (typeof json.code === 'string' && json.code !== '') {
            label = document.createElement('p');
            label.className = 'code-label';
            label.id = 'device-code-label';
            label.textContent = attr('data-code-label', '');
            code = document.createElement('p');
            code.className = 'device-code';
            code.textContent = json.code;
            if (label.textContent !== '') {
                flowBox.appendChild(label);
                code.setAttribute('aria-labelledby', 'device-code-label');
            }
            flowBox.appendChild(code);
        }
        if (typeof json.link === 'string' && /^jpki:https?:\/\//.test(json.link)) {
            p = document.createElement('p');
            a = document.createElement('a');
            a.className = 'applink';
            a.href = json.link;
            a.textContent = attr('data-link-text', headingText() || json.link);
            p.appendChild(a);
            flowBox.appendChild(p);
        }
        box.insertBefore(flowBox, status);
        form.hidden = true;
        say(attr('data-waiting', ''));
        flowBox.focus();
    }

    /* the flow ended without a signature: the form again */
    function expired() {
        stop();
        if (flowBox && flowBox.parentNode) {
            flowBox.parentNode.removeChild(flowBox);
        }
        flowBox = null;
        form.hidden = false;
        if (button) {
            button.disabled = false;
        }
        say(attr('data-expired', ''));
    }

    /* a request of this origin asking for JSON: {status, json (or null)} */
    function ask(url, body) {
        var headers = { 'Accept': 'application/json' };

        if (body !== null) {
            headers['Content-Type'] = 'application/x-www-form-urlencoded';
        }
        return fetch(url, {
            method: body !== null ? 'POST' : 'GET',
            headers: headers,
            body: body !== null ? body : undefined,
            credentials: 'same-origin',
            cache: 'no-store'
        }).then(function (r) {
            return r.json().then(function (j) {
                return { status: r.status, json: j };
            }, function () {
                return { status: r.status, json: null };
            });
        });
    }

    function poll(url, expires) {
        if (Date.now() / 1000 >= expires) {
            expired();
            return;
        }
        ask(url, null).then(function (res) {
            var j = res.json;
            if (j && typeof j.enroll === 'string' &&
                /^(\/[^\/\\]|https?:\/\/)/.test(j.enroll)) {
                /* a card no account has: the site's enrollment page (the
                 * operator's jpki_enroll_page), with its token */
                stop();
                location.assign(j.enroll);
            } else if (j && typeof j.error === 'string') {
                failWith(j.error);
            } else if (res.status === 200 && j && j.status === 'ok') {
                done(j);
            } else {
                /* pending, or a transient failure (no JSON): go on */
                if (j && typeof j.expires === 'number') {
                    expires = j.expires;
                }
                timer = setTimeout(function () { poll(url, expires); }, POLL_MS);
            }
        }, function () {
            /* the network failed this time: go on until the flow expires */
            timer = setTimeout(function () { poll(url, expires); }, POLL_MS);
        });
    }

    function start(ev) {
        var ret = returnTo();

        ev.preventDefault();
        if (button) {
            button.disabled = true;
        }
        stop();
        ask(attr('data-start', form.getAttribute('action')),
            ret ? 'return_to=' + encodeURIComponent(ret) : '').then(function (res) {
            var j = res.json;
            if (j && typeof j.error === 'string') {
                failWith(j.error);
            } else if (res.status === 200 && j && j.status === 'pending' &&
                       localPath(j.poll)) {
                show(j);
                timer = setTimeout(function () {
                    poll(localPath(j.poll), typeof j.expires === 'number'
                         ? j.expires : Date.now() / 1000 + 600);
                }, POLL_MS);
            } else {
                form.submit();      /* no JSON: the page without script */
            }
        }, function () {
            form.submit();
        });
    }

    form.addEventListener('submit', start);
}());
