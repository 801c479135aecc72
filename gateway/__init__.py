"""The gateway: Meta webhooks in, FlowService calls, Graph API sends out; it holds no state."""
