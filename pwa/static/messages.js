/* Every string of the phone app, by key: zh-Hans first and complete; other languages add a
 * catalogue here and fall back to zh-Hans for what they miss. */
(function (root) {
  'use strict';
  var catalogues = {
    'zh-Hans': {
      'app.subtitle': '网格员', 'app.loading': '正在打开…',
      'tab.tasks': '任务', 'tab.report': '上报', 'tab.queue': '待发送', 'tab.me': '我的',
      'nav.back': '返回', 'nav.tasks': '我的任务', 'nav.ticket': '返回工单',
      'net.online': '在线', 'net.offline': '离线', 'net.pending': '{n} 项待发送',
      'notice.new': '有新的工单消息',
      'time.minutes': '{n} 分钟', 'time.hours': '{n} 小时', 'time.days': '{n} 天',
      'due.sign': '签收时限', 'due.handle': '办理时限', 'due.left': '剩 {d}', 'due.overdue': '已超时 {d}',
      'due.mark_overdue': '超时', 'due.mark_soon': '临期',
      'status.accepted': '已受理', 'status.assigned': '待签收', 'status.in_progress': '办理中',
      'status.on_site': '已到场', 'status.replied': '已反馈待审核', 'status.closed': '已办结',
      'status.returned': '已退回',
      'urgency.normal': '一般', 'urgency.urgent': '紧急', 'urgency.emergency': '特急',
      'type.consultation': '咨询', 'type.help': '求助', 'type.complaint': '投诉', 'type.report': '举报',
      'type.suggestion': '建议',
      'source.hotline': '12345 热线', 'source.patrol': '网格巡查', 'source.web': '网站', 'source.app': '应用',
      'source.api': '系统对接',
      'resolution.resolved': '已解决', 'resolution.partially': '部分解决', 'resolution.unresolved': '未解决',
      'resolution.explained': '已解释说明',
      'event.accept': '受理', 'event.dispatch': '派发', 'event.sign': '签收', 'event.return': '退回',
      'event.check_in': '到场打卡', 'event.check_in_refused': '打卡未通过', 'event.photo': '上传照片', 'event.reply': '反馈', 'event.approve': '审核通过',
      'event.reject': '审核退回', 'event.request_extension': '申请延期', 'event.decide_extension': '延期审批',
      'event.urge': '督办', 'event.follow_up': '回访', 'event.reopen': '重新办理',
      'event.reveal_reporter': '查看反映人信息', 'event.escalate': '超时升级',
      'kind.sign': '签收', 'kind.check-in': '到场打卡', 'kind.photo': '照片', 'kind.reply': '反馈',
      'kind.return': '退回', 'kind.accept': '主动上报',
      'login.title': '网格员登录', 'login.username': '用户名', 'login.password': '密码', 'login.submit': '登录',
      'login.failed': '用户名或密码不正确', 'login.error': '登录失败，请稍后再试',
      'login.offline': '现在连不上服务器。第一次登录需要网络。',
      'login.pending': '手机上还有 {n} 项待发送，登录后会自动发送，不会丢失。',
      'login.expired': '登录已过期，待发送的内容都还在。', 'login.again': '重新登录',
      'tasks.title': '我的任务', 'tasks.summary': '共 {n} 件', 'tasks.overdue': '超时 {n}',
      'tasks.soon': '临期 {n}', 'tasks.empty': '现在没有待办工单。', 'tasks.updated': '更新于 {at}',
      'ticket.pending': '{n} 项待发送', 'ticket.pending_long': '本工单有 {n} 项已保存在手机上，等待发送',
      'ticket.attention': '本工单有 {n} 项被服务器拒收，需要您处理',
      'ticket.replied_wait': '已反馈，等待审核。', 'ticket.returned_wait': '已退回，等待上级重新派发。',
      'ticket.what': '问题', 'ticket.where': '位置', 'ticket.who': '反映人', 'ticket.history': '办理记录',
      'ticket.accepted_at': '受理于 {at}', 'ticket.gone': '这张工单已不在您的名下（可能已改派）。',
      'ticket.offline_missing': '离线中，手机上没有这张工单的副本。',
      'ticket.details_later': '详情还没有下载到手机上，联网后显示。',
      'reporter.anonymous': '匿名反映', 'reporter.masked': '按规定隐去部分信息',
      'map.title': '网格与工单位置', 'map.north': '北', 'map.legend': '红点：工单位置；蓝点：我的位置',
      'map.metres': '距您 {n} 米', 'map.km': '距您 {n} 公里', 'map.direction': '在您的{dir}方向',
      'map.no_position': '打开定位后可显示距离和方向',
      'map.n': '北', 'map.ne': '东北', 'map.e': '东', 'map.se': '东南', 'map.s': '南', 'map.sw': '西南',
      'map.w': '西', 'map.nw': '西北',
      'action.sign': '签收', 'action.check_in': '到场打卡', 'action.check_in_again': '重新打卡',
      'action.reply': '填写办理结果', 'action.return': '退回',
      'return.reason': '退回原因（必填）', 'return.submit': '确认退回', 'return.too_short': '请写明退回原因',
      'gps.locating': '正在定位…', 'gps.denied': '没有定位权限，请在设置中允许定位。',
      'gps.failed': '定位失败，请到开阔处再试。', 'gps.unsupported': '此浏览器不能定位。',
      'checkin.sent': '打卡已送达', 'checkin.warning': '打卡已记录，但请注意：',
      'checkin.reason': '说明情况（例如：室内信号弱）', 'checkin.retry_reason': '附说明重新打卡',
      'checkin.reason_needed': '请先写明情况',
      'sign.sent': '签收已送达',
      'save.saved_sending': '已保存，正在发送', 'save.saved_offline': '已保存在手机上，联网后自动发送',
      'save.failed': '没能保存到手机存储，请重试',
      'draft.saved': '草稿已保存 {at}',
      'reply.title': '办理结果', 'reply.resolution': '处理情况', 'reply.result': '处理经过和结果',
      'reply.placeholder': '写下处理经过和结果；也可以用输入法的话筒键口述',
      'reply.submit': '提交反馈', 'reply.too_short': '请写下处理结果（至少两个字）', 'reply.sent': '反馈已送达',
      'photo.title': '现场照片', 'photo.take': '拍照', 'photo.choose': '从相册选', 'photo.remove': '删除这张照片',
      'photo.processing': '正在处理照片 {i}/{n}…', 'photo.ready': '已有 {n} 张照片，已保存在手机上',
      'photo.failed': '这张照片无法读取，请换一张',
      'report.title': '主动上报', 'report.locating': '正在定位…', 'report.locate_again': '重新定位',
      'report.position': '已定位（精度约 {acc} 米）', 'report.what': '发现了什么问题（必填）',
      'report.what_placeholder': '例如：路灯不亮、井盖缺失', 'report.detail': '详细情况',
      'report.detail_placeholder': '位置、影响范围、已采取的措施', 'report.address': '地点描述',
      'report.type': '类别', 'report.urgency': '紧急程度', 'report.submit': '提交上报',
      'report.need_title': '请写下发现的问题', 'report.need_address': '请填写地点描述。',
      'report.sent': '上报已送达，编号 {number}',
      'queue.title': '待发送', 'queue.summary': '手机上有 {n} 项等待发送', 'queue.empty': '全部已发送。',
      'queue.last_sync': '上次发送 {at}', 'queue.send_now': '立即发送', 'queue.sending': '正在发送…',
      'queue.attention': '需要处理（{n}）',
      'queue.attention_help': '服务器拒收了这些内容。您写的内容都保留着：可以修改后重试，或确认放弃。',
      'queue.waiting': '排队中（{n}）', 'queue.saved_at': '保存于 {at}', 'queue.attempts': '已尝试 {n} 次',
      'queue.blocked': '等待同一工单的前一项', 'queue.needs_attention_toast': '有内容被服务器拒收，请到“待发送”处理',
      'attention.kept': '您写的内容（已保留）', 'attention.copy': '复制文字', 'attention.copied': '已复制',
      'attention.retry': '重试', 'attention.discard': '放弃这一项',
      'attention.discard_confirm': '确定放弃？这一项不会再发送，也无法恢复。',
      'conflict.now': '工单现在的状态：{status}，承办：{who}',
      'error.network': '网络不通，稍后自动重试', 'error.not_our_server': '收到的不是一号服务器的回复（可能需要登录公共网络），稍后自动重试',
      'error.wrong_state': '工单状态已变化，这一步不能再做',
      'error.stale_version': '工单在您离线期间被他人改动（可能已改派）',
      'error.reassigned': '工单已在您离线期间改派给他人，这一步没有生效',
      'error.forbidden': '您已无权处理这张工单（可能已改派给他人）',
      'error.ticket_not_found': '工单已不在您的名下（可能已改派给他人）',
      'error.checkin_refused': '打卡未被接受', 'error.invalid_input': '内容不符合要求',
      'error.unknown_photo': '照片没有上传成功', 'error.local_error': '手机上的数据有问题',
      'error.csrf_failed': '登录凭据需要刷新',
      'me.title': '我的', 'me.storage': '手机存储', 'me.device': '设备 {id} · 版本 {v}', 'me.logout': '退出登录',
      'me.logout_blocked': '还有 {n} 项没有发送，发送完才能退出（否则会丢失）。',
      'me.logout_offline': '离线时不能退出登录',
      'me.insecure': '此地址不是 HTTPS：浏览器不允许安装和离线使用。请让管理员启用 HTTPS。',
      'storage.persisted': '已开启持久保存：浏览器清理空间时不会删除待发送的内容。',
      'storage.not_persisted': '未开启持久保存：空间紧张时浏览器可能清理数据。建议安装到主屏幕。',
      'push.title': '消息提醒', 'push.enable': '开启消息提醒',
      'push.subscribed': '已开启：新工单、督办会推送到这部手机。',
      'push.prompt': '还没有开启：开启后，新工单会推送到这部手机。', 'push.idle': '消息提醒尚未设置。',
      'push.denied': '消息提醒被浏览器拒绝：请在浏览器设置中允许通知。App 打开时仍会实时提醒。',
      'push.unsupported': '这个浏览器不支持推送：App 打开时仍会实时提醒。',
      'push.error': '暂时无法开启推送，请稍后再试。',
      'storage.ask': '申请持久保存', 'storage.granted': '已开启持久保存', 'storage.refused': '浏览器没有同意持久保存',
    },
  };

  var wanted = (root.navigator && root.navigator.language) || 'zh-Hans';
  var locale = catalogues[wanted] ? wanted : 'zh-Hans';
  var messages = catalogues[locale];
  var fallback = catalogues['zh-Hans'];

  function t(key, params) {
    var text = messages[key] != null ? messages[key] : (fallback[key] != null ? fallback[key] : key);
    if (params) {
      text = text.replace(/\{(\w+)\}/g, function (m, name) { return params[name] != null ? params[name] : m; });
    }
    return text;
  }

  function has(key) { return messages[key] != null || fallback[key] != null; }

  /* Translate the shell's static text (elements marked data-t). */
  function apply(doc) {
    doc.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = t(el.dataset.t); });
  }

  root.YihaoI18n = {t: t, has: has, apply: apply, locale: locale === 'zh-Hans' ? 'zh-CN' : locale,
                    catalogues: catalogues};
})(typeof self !== 'undefined' ? self : this);
