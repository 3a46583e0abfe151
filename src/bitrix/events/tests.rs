use super::*;
use crate::bitrix::form;

fn decode(body: &str) -> Value {
    form::decode(body).expect("form decodes")
}

const AUTH: &str = "auth[member_id]=m1&auth[application_token]=tok&auth[domain]=x.bitrix24.com";

#[test]
fn a_message_add_body_is_read_with_its_operator_message() {
    let body = format!(
        "event=ONIMCONNECTORMESSAGEADD&event_handler_id=555&data[CONNECTOR]=ocgw&data[LINE]=107\
         &data[MESSAGES][0][im][chat_id]=1807&data[MESSAGES][0][im][message_id]=86497\
         &data[MESSAGES][0][message][user_id]=27&data[MESSAGES][0][message][text]=%5Bb%5DKlaus%3A%5B%2Fb%5D+Hi\
         &data[MESSAGES][0][chat][id]=channel-123&ts=1773759161&{AUTH}"
    );
    let form = decode(&body);
    assert_eq!(
        sender(&form).unwrap(),
        Sender {
            member_id: "m1".into(),
            application_token: "tok".into()
        }
    );
    assert_eq!(handler_id(&form).as_deref(), Some("555"));
    match parse(&form).unwrap() {
        BitrixEvent::MessageAdd {
            connector,
            line,
            messages,
        } => {
            assert_eq!((connector.as_str(), line), ("ocgw", 107));
            assert_eq!(
                messages,
                vec![OperatorMessage {
                    im_chat_id: 1807,
                    im_message_id: 86497,
                    chat_id: "channel-123".into(),
                    external_ids: vec![],
                    text: "[b]Klaus:[/b] Hi".into(),
                    operator_id: Some("27".into()),
                    files: vec![],
                }]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn message_id_is_read_as_an_array_in_updates_and_a_string_in_deletes() {
    let update = decode(&format!(
        "event=ONIMCONNECTORMESSAGEUPDATE&data[CONNECTOR]=ocgw&data[LINE]=7&data[MESSAGES][0][im][chat_id]=1\
         &data[MESSAGES][0][im][message_id]=2&data[MESSAGES][0][message][id][0]=ext-5&data[MESSAGES][0][message][id][1]=ext-6\
         &data[MESSAGES][0][message][text]=new&data[MESSAGES][0][chat][id]=c&{AUTH}"
    ));
    let BitrixEvent::MessageUpdate { messages, .. } = parse(&update).unwrap() else {
        panic!()
    };
    assert_eq!(messages[0].external_ids, vec!["ext-5", "ext-6"]);
    let delete = decode(&format!(
        "event=ONIMCONNECTORMESSAGEDELETE&eventId=9&data[CONNECTOR]=ocgw&data[LINE]=7&data[MESSAGES][0][im][chat_id]=1\
         &data[MESSAGES][0][im][message_id]=2&data[MESSAGES][0][message][id]=ext-5&data[MESSAGES][0][chat][id]=c&{AUTH}"
    ));
    assert_eq!(
        handler_id(&delete).as_deref(),
        Some("9"),
        "eventId is accepted too"
    );
    let BitrixEvent::MessageDelete { messages, .. } = parse(&delete).unwrap() else {
        panic!()
    };
    assert_eq!(messages[0].external_ids, vec!["ext-5"]);
}

#[test]
fn status_delete_uses_lowercase_keys_and_line_delete_a_bare_number() {
    let status = decode(&format!(
        "event=ONIMCONNECTORSTATUSDELETE&data[connector]=ocgw&data[line]=107&{AUTH}"
    ));
    assert_eq!(
        parse(&status).unwrap(),
        BitrixEvent::StatusDelete {
            connector: "ocgw".into(),
            line: 107
        }
    );
    let line = decode(&format!("event=ONIMCONNECTORLINEDELETE&data=107&{AUTH}"));
    assert_eq!(parse(&line).unwrap(), BitrixEvent::LineDelete { line: 107 });
}

#[test]
fn uninstall_reads_the_clean_flag_and_other_events_are_named() {
    let clean = decode(
        "event=ONAPPUNINSTALL&data[LANGUAGE_ID]=en&data[CLEAN]=1&auth[member_id]=m&auth[application_token]=t",
    );
    assert_eq!(
        parse(&clean).unwrap(),
        BitrixEvent::AppUninstall { clean: true }
    );
    let keep =
        decode("event=onappuninstall&data[CLEAN]=0&auth[member_id]=m&auth[application_token]=t");
    assert_eq!(
        parse(&keep).unwrap(),
        BitrixEvent::AppUninstall { clean: false }
    );
    let other = decode("event=ONAPPTEST&auth[member_id]=m&auth[application_token]=t");
    assert_eq!(
        parse(&other).unwrap(),
        BitrixEvent::Other("ONAPPTEST".into())
    );
}

#[test]
fn missing_pieces_are_errors() {
    assert_eq!(
        sender(&decode("event=X&auth[member_id]=m")),
        Err(EventError::MissingAuth)
    );
    assert_eq!(sender(&decode("event=X")), Err(EventError::MissingAuth));
    assert!(parse(&decode("event=ONIMCONNECTORMESSAGEADD&data[LINE]=1")).is_err());
    assert!(parse(&decode(
        "event=ONIMCONNECTORMESSAGEADD&data[CONNECTOR]=c&data[LINE]=1&data[MESSAGES][0][im][chat_id]=x"
    ))
    .is_err());
    assert!(parse(&decode("event=ONIMCONNECTORLINEDELETE&data=abc")).is_err());
    assert!(parse(&decode("data=1")).is_err());
}

#[test]
fn a_deleted_bot_is_named_by_its_id() {
    let form = decode(
        "event=ONIMBOTDELETE&data[BOT_ID]=39&data[BOT_CODE]=ocgw_bot&auth[member_id]=m&auth[application_token]=t",
    );
    assert_eq!(parse(&form).unwrap(), BitrixEvent::BotDelete { bot_id: 39 });
}
