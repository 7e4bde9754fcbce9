// The test page's script, run by Chromium (browser.test.mjs serves it after
// the @stomp/stompjs UMD bundle). It connects to the broker URL given as
// ?url=... (with the CONNECT headers of ?connect=JSON, if any), subscribes
// to ?dest=... (once per header object of ?subs=JSON, else once) and
// reports through window.e2e, which the test polls with
// page.waitForFunction.
/* global StompJs */
(function () {
  'use strict';
  const params = new URLSearchParams(location.search);
  const url = params.get('url');
  const dest = params.get('dest');
  const connectHeaders = JSON.parse(params.get('connect') || '{}');
  const subs = JSON.parse(params.get('subs') || '[{}]');
  const state = {
    connected: false,
    subscribed: false,
    protocol: null,
    version: null,
    heartBeat: null,
    messages: [],
    wsMessages: [], // {kind: 'text'|'binary', command} of each WebSocket message after CONNECTED
    errors: [],
    closed: false,
  };
  window.e2e = state;

  const log = (m) => {
    console.log(`[stomp] ${m}`);
  };

  const client = new StompJs.Client({
    brokerURL: url, // the browser's own WebSocket, offering v12.stomp, v11.stomp, v10.stomp
    connectHeaders,
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: log,
    onConnect: (frame) => {
      state.connected = true;
      state.protocol = client.webSocket.protocol;
      state.version = frame.headers.version;
      state.heartBeat = frame.headers['heart-beat'];
      let receipts = 0;
      // Each STOMP frame arrives as one WebSocket message: note its kind.
      client.webSocket.addEventListener('message', (evt) => {
        const text = typeof evt.data === 'string';
        const head = text ? evt.data : new TextDecoder().decode(new Uint8Array(evt.data).slice(0, 16));
        state.wsMessages.push({ kind: text ? 'text' : 'binary', command: head.split('\n')[0] });
      });
      subs.forEach((headers, i) => {
        const receipt = subs.length === 1 ? 'page-sub' : `page-sub-${i}`;
        client.watchForReceipt(receipt, () => {
          state.subscribed = ++receipts === subs.length;
        });
        client.subscribe(dest, (m) => {
          // @stomp/stompjs v7 keeps received bodies as bytes; body decodes UTF-8.
          state.messages.push({
            headers: m.headers,
            body: m.body,
            bytes: Array.from(m.binaryBody),
          });
        }, { ...headers, receipt });
      });
    },
    onStompError: (frame) => {
      state.errors.push(`ERROR frame: ${JSON.stringify(frame.headers)} ${frame.body}`);
    },
    onWebSocketError: () => {
      state.errors.push(`WebSocket error on ${url}`);
    },
    onWebSocketClose: (evt) => {
      state.closed = true;
      if (!state.connected) {
        state.errors.push(`WebSocket closed before CONNECTED: code ${evt.code} ${evt.reason}`);
      }
    },
  });
  // e2ePublish sends a text body to the page's destination.
  window.e2ePublish = (body, headers) => {
    client.publish({ destination: dest, body, headers: headers || {} });
  };
  // e2ePublishBytes sends the given byte values as a binary body.
  window.e2ePublishBytes = (bytes) => {
    client.publish({
      destination: dest,
      binaryBody: new Uint8Array(bytes),
      headers: { 'content-type': 'application/octet-stream' },
    });
  };
  window.e2eDisconnect = () => client.deactivate();

  client.activate();
})();
