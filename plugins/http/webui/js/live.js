// live.js — the WebSocket event stream (<base>api/events) with reconnection.
//
// Frames are {"Type": string, "Data": any}; anything else is ignored. After a drop the
// connection is retried with exponential backoff (0.5 s doubling to 30 s, ±25 % jitter),
// immediately when the browser comes back online. on_state gets 'open' | 'connecting' |
// 'closed'; on_open also fires after every reconnect, so the caller can reload what it may
// have missed while disconnected.

import { url } from './base.js';

const max_frame = 4 << 20;

export class live_events {
  constructor({ on_event, on_state, on_open }) {
    this.on_event = on_event;
    this.on_state = on_state;
    this.on_open = on_open;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.opened_before = false;
    window.addEventListener('online', () => this.retry_now());
  }

  start() {
    this.connect();
  }

  retry_now() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    this.timer = null;
    const u = url('api/events');
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    this.on_state('connecting');
    let ws;
    try {
      ws = new WebSocket(u);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.attempt = 0;
      this.on_state('open');
      const again = this.opened_before;
      this.opened_before = true;
      this.on_open(again);
    });
    ws.addEventListener('message', (e) => {
      if (typeof e.data !== 'string' || e.data.length > max_frame) return;
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (f && typeof f === 'object' && typeof f.Type === 'string') this.on_event(f.Type, f.Data);
    });
    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.on_state('closed');
      this.schedule();
    });
  }

  schedule() {
    const delay = Math.min(30000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt = Math.min(this.attempt + 1, 10);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
